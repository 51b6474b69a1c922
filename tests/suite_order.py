"""The test files that take longest on a 2-core machine, longest first (measured with `scripts/test.sh
--durations=0`, summed per file; a file missing here only runs later). xdist's --dist loadfile hands files out
in collection order (scripts/test.sh passes --no-loadscope-reorder, whose default puts files with many short
tests first): started first, the long ones no longer leave one worker running the last of them while the
other has nothing to do. tests/conftest.py orders the collection by it."""

LONGEST_FIRST = (  # a clean-clone run of d9c96dc: 1410 tests, 1835 s; seconds per file in brackets
    "tests/batch/test_ray.py",  # 423
    "tests/test_learning_quality.py",  # 382 (about 325 since its measure draws in one call)
    "tests/llm/test_data_parallel.py",  # 271
    "tests/ui/test_browser.py",  # 183
    "tests/train/test_run_faults.py",  # 172
    "tests/ui/test_jobs.py",  # 148
    "tests/batch/test_batch_resume.py",  # 143
    "tests/batch/test_object_store.py",  # 123
    "tests/bench/test_bench_smoke.py",  # 122
    "tests/train/test_resume.py",  # 114
    "tests/train/test_data_parallel_images.py",  # 111
    "tests/bench/test_generation_bench.py",  # 87
    "tests/models/test_sdxl_training.py",  # 81
    "tests/train/test_validation.py",  # 81
    "tests/llm/test_llm_training.py",  # 64
    "tests/llm/test_llm_bench.py",  # 57
    "tests/llm/test_sharded_configs.py",  # 49
    "tests/models/test_real_size.py",  # 45
    "tests/inject/test_network_types.py",  # 44
    "tests/models/test_demo_base.py",  # 39
)
