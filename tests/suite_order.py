"""The test files that take longest on a 2-core machine, longest first (measured with `scripts/test.sh
--durations=0`, summed per file; a file missing here only runs later). xdist's --dist loadfile hands files out
in collection order (scripts/test.sh passes --no-loadscope-reorder, whose default puts files with many short
tests first): started first, the long ones no longer leave one worker running the last of them while the
other has nothing to do. tests/conftest.py orders the collection by it."""

LONGEST_FIRST = (
    "tests/test_learning_quality.py",
    "tests/llm/test_data_parallel.py",
    "tests/batch/test_ray.py",
    "tests/ui/test_browser.py",
    "tests/train/test_run_faults.py",
    "tests/bench/test_bench_smoke.py",
    "tests/ui/test_jobs.py",
    "tests/train/test_data_parallel_images.py",
    "tests/train/test_resume.py",
    "tests/train/test_state_faults.py",
    "tests/data/test_caption_files_cli.py",
    "tests/batch/test_batch_resume.py",
    "tests/batch/test_object_store.py",
    "tests/llm/test_sharded_configs.py",
    "tests/config/test_config_messages_cli.py",
    "tests/bench/test_generation_bench.py",
    "tests/train/test_validation.py",
    "tests/llm/test_llm_bench.py",
)
