"""TileDB-VCF ingestion and export fanned out over AWS Batch: the domain, without a command line.

The scripts (``batch-ingest.py``, ``batch-export.py``, ``batch-runs.py``) read their flags
(``flags.py`` makes the click options of the declarations in ``options`` and turns click's values
into typed ones) and hand over to ``common.py``, the thin command-line layer they share (with
``hints.py``, the commands it prints to come back to a run). Everything else is here:

- ``inputs``    user input parsed and checked (no AWS call): URIs, sample lists, names; ``InputError``
- ``options``   the options, each declared once (flag, default, range, help): ``IngestOptions``, ``ExportOptions``
- ``commands``  the one module that spells ``tiledbvcf`` flags (the image's entrypoint uses it too)
- ``arraytasks`` array jobs' task files and index placeholder: what the Batch executor writes, the image reads
- ``bed``       PURE: a BED file as people have it, checked and cleaned into the copy the export jobs read
- ``plan``      PURE: options and samples to a ``Plan`` of stages of tasks; the dry-run text's header
- ``storage``   S3 locations, and the object store the run's files go to
- ``aws``       AWS clients with retries, and AWS error text
- ``record``    run identity and places; the typed ``RunRecord`` (same JSON as ever)
- ``preflight`` S3 checks before spending: buckets, objects, writability, samples, headers
- ``s3listing`` which of many S3 keys exist, and their sizes: key ranges listed at once, or HEAD requests
- ``prefixlisting`` every key under an S3 prefix: pieces listed at once, each cut where its page shows counters
- ``discovery`` ``--samples`` naming a prefix or directory: the files found, paired with their indexes, what is left out
- ``ledger``    what earlier runs did with a dataset's samples: skip, resume
- ``headercheck`` the samples' headers read before anything is spent: one sample a file, no name twice
- ``repair``    PURE: the repair stage (``--repair-to``): each input's repair, its files' places, the bcftools lines
- ``repaircheck`` what the inputs need repaired, read before anything is spent (the headers however compressed)
- ``repairjob`` a repair job as the image runs it: inputs fetched, repaired with bcftools, published whole
- ``prepare``   the I/O around planning an ingestion (checks, the dataset, the ledger, the registry)
- ``prepare_export`` the same for an export (the destination, the names, the BED, the tools its jobs need)
- ``submit``    executor-neutral submission: upload, record, submit in order, roll back
- ``watch``     polling, stuck jobs, Ctrl-C, cancel
- ``oom``       jobs killed for memory submitted again with more, with the jobs that waited on them (--wait)
- ``progress``  how far a run has got: counts per stage, durations, the live display (no polling)
- ``report``    the figures of a finished run, export verification, failure diagnosis
- ``trace``     PURE: a run's trace, one row per job attempt (``batch-runs.py report --trace``)
- ``htmlreport`` a run's report as one self-contained HTML page (its style and script: ``report_page/``)
- ``joblogs``   the logs of the jobs that succeeded (``batch-runs.py logs --all``)
- ``executors`` the seam: the registry (``__init__``: which executors there are, made from the command line
                or a record), ``base`` (the protocol), ``jobs`` (``Job``, ``RecordedJob``, the jobs' dry-run
                text), ``batch`` (the only module that speaks Batch; ``arrays`` and ``batch_setup`` its
                parts), and ``local`` (the same jobs as processes on this machine; ``local_setup``)

Rules (checked by ``tests/test_layers.py``): nothing here imports click, ``common`` or ``hints``; ``plan``,
``commands``, ``arraytasks``, ``inputs``, ``options``, ``repair`` and ``bed`` make no I/O and import no executor; only
``executors/batch.py`` writes Batch request keys, and only the Batch executor's modules speak Batch's
meanings (its reasons, its hosts, its name); only ``commands`` spells tiledbvcf flags; no import cycle;
no module over 450 lines, no function over 60.
"""

__version__ = "1.2.0"
