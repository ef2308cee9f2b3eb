"""The S3 listing optimiser behind the preflight's lookup: key ranges listed concurrently, HEAD where sparse."""

from __future__ import annotations

import math

import boto3
import pytest
from moto import mock_aws

import local_aws
from tiledbvcf_batch.aws import make_clients
from tiledbvcf_batch.headers import REPAIR_HINT
from tiledbvcf_batch.inputs import Sample
from tiledbvcf_batch.preflight import check_s3_samples, wanted_keys
from tiledbvcf_batch.s3listing import KEY_SIZES, CallCounter, find_sizes, keys_and_sizes_only, listing_client

BUCKET = "bucket-name"


@pytest.fixture
def s3() -> tuple:
    """Emulated S3 with the spec's buckets; the scripts' S3 client, and a counter of every S3 call made after."""
    with mock_aws():
        local_aws.create_buckets()
        boto3.setup_default_session()
        counter = CallCounter().attach(boto3.DEFAULT_SESSION.events)
        yield make_clients("us-east-1").s3, counter


def put(objects: dict[str, int]) -> None:
    """Objects of the given sizes, straight into moto's S3 (thousands through the API take too long)."""
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["aws"]
    for key, size in objects.items():
        backend.put_object(BUCKET, key, b"x" * size)


def uris(keys: list[str]) -> list[Sample]:
    return [Sample(f"s3://{BUCKET}/{key}") for key in keys]


def both_ways(client, samples: list[Sample]) -> tuple:
    """The parallel check's answer, after checking it equals the sequential reference's exactly."""
    parallel = check_s3_samples(client, samples)
    assert parallel == check_s3_samples(client, samples, parallel=False)
    return parallel


def test_dense_folders_are_listed_in_ranges_with_a_page_per_thousand_objects(s3):
    client, counter = s3
    keys = [f"cohort/d{folder}/S{i:05d}.vcf.gz" for folder in range(3) for i in range(1000)]
    put({key: 100 + i % 7 for i, key in enumerate(keys)} | {key + ".tbi": 1 for key in keys})
    samples = uris(keys)
    counter.calls.clear()
    found = find_sizes(client, wanted_keys(samples))
    assert counter.calls["HeadObject"] == 0 and found.heads == 0
    assert counter.calls["ListObjectsV2"] <= math.ceil(6000 / 1000) + found.ranges
    assert found.sizes == {BUCKET: {key: 100 + i % 7 for i, key in enumerate(keys)} | {key + ".tbi": 1 for key in keys}}


def test_a_folder_cut_in_ranges_lists_each_range_from_just_before_its_first_key(s3):
    client, counter = s3
    keys = [f"one/S{i:05d}.vcf.gz" for i in range(2250)]
    put(dict.fromkeys(keys, 5) | {key + ".csi": 1 for key in keys})
    counter.calls.clear()
    found = find_sizes(client, wanted_keys(uris(keys)), workers=4)
    # The probe's page answers 1,499 keys of 6,750: 4 pages expected, in 4 ranges of 7/8 page, a page each.
    assert found.ranges == 4 and len(found.sizes[BUCKET]) == 4500
    assert counter.calls == {"ListObjectsV2": 1 + 4}


def test_few_samples_among_many_objects_are_found_with_head_requests(s3):
    client, counter = s3
    keys = [f"big/S{i:05d}.vcf.gz" for i in range(0, 2500, 250)]  # 10 samples among 5,000 objects
    put({f"big/S{i:05d}.vcf.gz": 3 for i in range(2500)} | {f"big/S{i:05d}.vcf.gz.tbi": 1 for i in range(2500)})
    counter.calls.clear()
    found = find_sizes(client, wanted_keys(uris(keys)))
    # The probe page answers the first 2 samples (6 keys); the other 24 keys would take 4 more pages.
    assert found.heads == 24 and found.ranges == 0
    assert counter.calls == {"ListObjectsV2": 1, "HeadObject": 24}
    assert both_ways(client, uris(keys)) == ([], {f"s3://{BUCKET}/{key}": 3 for key in keys})


def test_parallel_check_equals_the_sequential_one_on_missing_empty_and_named_indexes(s3):
    client, counter = s3
    dense = [f"dense/S{i:04d}.bcf" for i in range(2100)]
    sparse = [f"sparse/S{i:04d}.bcf" for i in range(0, 2500, 250)]
    objects = dict.fromkeys(dense, 9) | {key + ".csi": 2 for key in dense}
    objects |= {f"sparse/S{i:04d}.bcf": 9 for i in range(2500)} | {f"sparse/S{i:04d}.bcf.tbi": 2 for i in range(2500)}
    for key in ("dense/S0100.bcf.csi", "sparse/S1000.bcf.tbi", "dense/S2000.bcf", "sparse/S1500.bcf"):
        del objects[key]  # no index; no sample
    objects |= {"dense/S0200.bcf.csi": 0, "dense/S0300.bcf.csi": 0, "dense/S0300.bcf.tbi": 4, "sparse/S2000.bcf": 0}
    objects |= {"idx/S0001.bcf.csi": 3, "idx/empty.csi": 0, "sparse/S0750.bcf.tbi": 0, "named/A.bcf": 7}
    put(objects | {"named/B.bcf": 7})
    named = [  # indexes named after a TAB
        Sample(f"s3://{BUCKET}/named/A.bcf", f"s3://{BUCKET}/idx/S0001.bcf.csi"),
        Sample(f"s3://{BUCKET}/named/B.bcf", f"s3://{BUCKET}/idx/missing.csi"),
        Sample(f"s3://{BUCKET}/sparse/S1260.bcf", f"s3://{BUCKET}/idx/empty.csi"),
    ]
    samples = [*uris(dense + sparse), *named, Sample("s3://no-such-bucket/x/S1.bcf")]
    counter.calls.clear()
    problems, sizes = both_ways(client, samples)
    assert counter.calls["HeadObject"] > 0  # the sparse folder
    assert problems == [
        "cannot list s3://no-such-bucket/x/S1.bcf to check 3 sample and index files (NoSuchBucket: The specified "
        "bucket does not exist): the scripts need s3:ListBucket there",
        f"sample s3://{BUCKET}/dense/S0100.bcf has no index beside it (S0100.bcf.csi or .tbi): it is not "
        "bgzip-compressed, which bcftools cannot index: compress it with bgzip (bgzip FILE for an uncompressed VCF; "
        "zcat FILE | bgzip > NEW for plain gzip), then index it (bcftools index) or name the index after a TAB"
        + REPAIR_HINT,
        f"the index of sample s3://{BUCKET}/dense/S0200.bcf is empty (0 bytes): index it again (bcftools index)",
        f"sample s3://{BUCKET}/dense/S2000.bcf does not exist: fix the samples file or upload it",
        f"the index of sample s3://{BUCKET}/sparse/S0750.bcf is empty (0 bytes): index it again (bcftools index)",
        f"sample s3://{BUCKET}/sparse/S1000.bcf has no index beside it (S1000.bcf.csi or .tbi): it is not "
        "bgzip-compressed, which bcftools cannot index: compress it with bgzip (bgzip FILE for an uncompressed VCF; "
        "zcat FILE | bgzip > NEW for plain gzip), then index it (bcftools index) or name the index after a TAB"
        + REPAIR_HINT,
        f"sample s3://{BUCKET}/sparse/S1500.bcf does not exist: fix the samples file or upload it",
        f"sample s3://{BUCKET}/sparse/S2000.bcf is empty (0 bytes): upload it again",
        f"index s3://{BUCKET}/idx/missing.csi of sample s3://{BUCKET}/named/B.bcf does not exist",
        f"the index of sample s3://{BUCKET}/sparse/S1260.bcf is empty (0 bytes): index it again (bcftools index)",
    ]
    assert sizes["s3://no-such-bucket/x/S1.bcf"] == -1 and len(sizes) == len(samples) - 2


def test_a_cohort_checked_in_chunks_gets_the_answer_of_one_pass(s3):
    client, counter = s3
    keys = [f"cohort/d{folder}/S{i:04d}.bcf" for folder in range(2) for i in range(700)]
    objects = dict.fromkeys(keys, 9) | {key + ".csi": 2 for key in keys}
    for key in ("cohort/d0/S0005.bcf", "cohort/d1/S0650.bcf.csi"):
        del objects[key]
    put(objects)
    # Out of key order, as a samples file may be; four samples in a bucket that cannot be listed.
    samples = uris(keys[::2] + keys[1::2]) + [Sample(f"s3://no-such-bucket/x/S{i}.bcf") for i in range(4)]
    counter.calls.clear()
    whole = check_s3_samples(client, samples)
    listings = counter.calls["ListObjectsV2"]
    counter.calls.clear()
    problems, sizes = check_s3_samples(client, samples, chunk=300)
    assert sizes == whole[1] and len(sizes) == len(samples) - 1
    assert sorted(problems) == sorted(whole[0]) and len(problems) == 3
    assert problems[0] == (  # one line for the directory, though every chunk met it
        "cannot list s3://no-such-bucket/x/S to check 12 sample and index files (NoSuchBucket: The specified "
        "bucket does not exist): the scripts need s3:ListBucket there"
    )
    # Each chunk lists its own key range: a few pages more where chunks meet, not the directories again.
    assert listings < counter.calls["ListObjectsV2"] <= listings + 2 * 5


def test_head_requests_refused_fall_back_to_listing(s3):
    from botocore.exceptions import ClientError

    client, counter = s3

    def refuse(**_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no s3:GetObject"}}, "HeadObject")

    boto3.DEFAULT_SESSION.events.register("before-send.s3.HeadObject", refuse)  # S3 answers 403
    keys = [f"big/S{i:05d}.vcf.gz" for i in range(0, 2500, 250)]
    put({f"big/S{i:05d}.vcf.gz": 3 for i in range(2500)} | {f"big/S{i:05d}.vcf.gz.csi": 1 for i in range(2500)})
    counter.calls.clear()
    assert both_ways(client, uris(keys)) == ([], {f"s3://{BUCKET}/{key}": 3 for key in keys})
    assert counter.calls["HeadObject"] == 24 and counter.calls["ListObjectsV2"] > 1 + 5  # the reference lists 5


def test_listings_read_keys_and_sizes_only_and_other_clients_keep_their_timestamps(s3):
    client, _ = s3
    odd = ["t/a&b.vcf.gz", "t/x<y>'\".bcf", "t/é ü+%20.bcf", "t/tab\there.bcf", "t/plain.bcf"]
    put({key: len(key) for key in odd})
    lean = listing_client(client, 4)
    plain = client.list_objects_v2(Bucket=BUCKET, Prefix="t/")["Contents"]
    page = lean.list_objects_v2(Bucket=BUCKET, Prefix="t/")
    assert "Contents" not in page and page[KEY_SIZES] == [(item["Key"], item["Size"]) for item in plain]
    assert sorted(item["Key"] for item in plain) == sorted(odd)
    assert all(item["LastModified"].year > 2000 for item in plain)
    fresh = make_clients("us-east-1").s3.list_objects_v2(Bucket=BUCKET, Prefix="t/")["Contents"]
    assert all("LastModified" in item for item in fresh)


def hooked(body: bytes) -> tuple[bytes, dict]:
    response, custom = {"status_code": 200, "body": body}, {}
    keys_and_sizes_only(response_dict=response, customized_response_dict=custom)
    return response["body"], custom


def test_a_page_of_another_shape_is_left_to_botocore():
    for odd in (
        b"<ListBucketResult><Contents><Size>3</Size></Contents></ListBucketResult>",  # no key
        b"<ListBucketResult><Contents><Key>k</Key><Size>3</Size></Contents><Other/>"
        b"<Contents><Key>l</Key><Size>4</Size></Contents></ListBucketResult>",  # something between
        b"<Error><Code>InternalError</Code></Error>",
    ):
        assert hooked(odd) == (odd, {})
    head = b"<ListBucketResult><IsTruncated>false</IsTruncated>"
    page = b"<Contents><Key>a&amp;b</Key><Size>3</Size></Contents>\n <Contents><Key>c</Key><Size>0</Size></Contents>"
    assert hooked(head + page + b"</ListBucketResult>") == (
        head + b"</ListBucketResult>",
        {KEY_SIZES: [("a&b", 3), ("c", 0)]},
    )
    url = b"<EncodingType>url</EncodingType><Contents><Key>a%26b+c%2B</Key><Size>3</Size></Contents>"
    assert hooked(head + url + b"</ListBucketResult>")[1] == {KEY_SIZES: [("a&b c+", 3)]}
