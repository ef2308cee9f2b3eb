"""Sample files as a sequencing centre leaves them, made in memory: BGZF as bgzip writes it (the header checks
refuse plain gzip), single- or multi-sample VCF and BCF headers."""

from __future__ import annotations

import struct
import zlib


def bgzf(data: bytes) -> bytes:
    """BGZF as bgzip writes it: gzip members whose extra field "BC" holds the block size, then the EOF block."""
    blocks = []
    for start in range(0, len(data), 60000):
        chunk = data[start : start + 60000]
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated = compressor.compress(chunk) + compressor.flush()
        header = (
            b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<HBBHH", 6, 66, 67, 2, len(deflated) + 25)
        )
        blocks.append(header + deflated + struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    eof = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    return b"".join(blocks) + eof


def bgzip_vcf(samples: list[str]) -> bytes:
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
    return bgzf(("\t".join([header, *samples]) + "\nchr1\t1\t.\tA\tC\t.\t.\t.\tGT\n").encode())


def bgzip_bcf(sample: str) -> bytes:
    text = f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n\0".encode()
    return bgzf(b"BCF\x02\x02" + struct.pack("<I", len(text)) + text + b"\x00" * 32)
