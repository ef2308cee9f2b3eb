"""TileDB-VCF ingestion and export fanned out over AWS Batch: the domain, without a command line.

The scripts (``batch-ingest.py``, ``batch-export.py``, ``batch-runs.py``) read their flags and
hand over to ``common.py``, the thin command-line layer they share. Everything else is here:

- ``inputs``    user input parsed and checked (no AWS call); the option dataclasses; ``InputError``
- ``commands``  the one module that spells ``tiledbvcf`` flags (the image's entrypoint uses it too)
- ``plan``      PURE: options and samples to a ``Plan`` of stages of tasks; the dry-run text's header
- ``storage``   S3 locations, and the object store the run's files go to
- ``aws``       AWS clients with retries, and AWS error text
- ``record``    run identity and places; the typed ``RunRecord`` (same JSON as ever)
- ``preflight`` S3 checks before spending: buckets, objects, writability, samples, headers
- ``lookup``    which of many S3 keys exist, and their sizes: key ranges listed at once, or HEAD requests
- ``ledger``    what earlier runs did with a dataset's samples: skip, resume
- ``prepare``   the I/O around planning, for ingest and export side by side
- ``submit``    executor-neutral submission: upload, record, submit in order, roll back
- ``watch``     polling, progress, stuck jobs, cancel
- ``report``    the figures of a finished run, export verification, failure diagnosis
- ``executors`` the seam: the registry (``__init__``: which executors there are, made from the command line
                or a record), ``base`` (the protocol), ``jobs`` (``Job``, ``RecordedJob``, the jobs' dry-run
                text), ``batch`` (the only module that speaks Batch; ``arrays`` and ``batch_setup`` its
                parts), and ``local`` (the same jobs as processes on this machine; ``local_setup``)

Rules (checked by ``tests/test_layers.py``): nothing here imports click or ``common``;
``plan``, ``commands`` and ``inputs`` make no I/O and import no executor; only
``executors/batch.py`` writes Batch request keys, and only the Batch executor's modules speak Batch's
meanings (its reasons, its hosts, its name); only ``commands`` spells tiledbvcf flags.
"""

__version__ = "1.1.0"
