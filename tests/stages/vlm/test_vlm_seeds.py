from stages.vlm.seeds import request_seed, sequence_seed


def test_request_seed_is_stable_and_distinguishes_its_inputs():
    base = request_seed(0, "task-1")
    assert base == request_seed(0, "task-1", "policy", "")
    others = {
        request_seed(1, "task-1"),
        request_seed(0, "task-2"),
        request_seed(0, "task-1", "distorted_image"),
        request_seed(0, "task-1", "policy", "blur"),
    }
    assert base not in others and len(others) == 4
    assert 0 <= base < 2**63


def test_sequence_seeds_differ_per_index():
    seeds = [sequence_seed(123, i) for i in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**63 for s in seeds)
