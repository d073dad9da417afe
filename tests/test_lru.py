"""tfnas.lru: the size-limited caches behind the proxies' fast paths."""

import logging

import pytest

from tfnas.lru import LRUCache, cache_stats, format_cache_stats


def test_least_recently_used_entry_goes_first():
    cache = LRUCache("test squares", maxsize=2)
    made = []

    def square(k):
        made.append(k)
        return k * k

    assert [cache.get_or_create(k, lambda k=k: square(k)) for k in (1, 2, 1, 3, 2, 1)] == [1, 4, 1, 9, 4, 1]
    assert made == [1, 2, 3, 2, 1]  # 2 was dropped for 3 (1 had been used since), then 1 for 2
    assert len(cache) == 2 and 2 in cache and 1 in cache and 3 not in cache
    assert cache.stats() == {"entries": 2, "maxsize": 2, "hits": 1, "misses": 5, "evictions": 3}
    assert cache_stats()["test squares"]["misses"] == 5
    assert "test squares 2/2 (hits 1, misses 5, evictions 3)" in format_cache_stats()
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache("bad", maxsize=0)


def test_misses_are_logged_at_debug(caplog):
    cache = LRUCache("test logged", maxsize=1)
    with caplog.at_level(logging.DEBUG, logger="tfnas.lru"):
        cache.get_or_create("a", lambda: 1)
        cache.get_or_create("a", lambda: 1)
        cache.get_or_create("b", lambda: 2)
    messages = [r.getMessage() for r in caplog.records]
    assert any("miss for 'a'" in m for m in messages) and any("evicted 'a'" in m for m in messages)


def test_zen_layer_functions_are_a_bounded_cache():
    from tfnas.spaces.zen import residual_free

    assert isinstance(residual_free._LAYER_FUNCTIONS, LRUCache)
    assert residual_free._LAYER_FUNCTIONS.maxsize >= 12  # every (kind, stride, depthwise) of one group count


def test_take_lends_an_entry_to_one_user_until_it_is_put_back():
    cache = LRUCache("test lent", maxsize=2)
    assert cache.take("a") is None  # a miss: the caller makes its own
    cache.put("a", ["trainer a"])
    lent = cache.take("a")
    assert lent == ["trainer a"] and "a" not in cache
    assert cache.take("a") is None  # while lent, a second user gets none
    cache.put("a", lent)
    cache.put("b", ["b"])
    cache.put("c", ["c"])  # "a" is the least recently used
    assert "a" not in cache and len(cache) == 2
    assert cache.stats() == {"entries": 2, "maxsize": 2, "hits": 1, "misses": 2, "evictions": 1}


def test_a_cache_pickles_with_its_entries_and_counts():
    import pickle

    cache = LRUCache("test pickled", maxsize=3)
    cache.put("a", [1])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.take("a") == [1] and copy.stats()["hits"] == 1 and copy.take("a") is None


def test_lend_gives_an_entry_back_after_its_block_and_drops_it_after_an_error():
    cache = LRUCache("test lend", maxsize=2)
    made = []
    with cache.lend("a", lambda: made.append(1) or ["a"]) as first:
        assert "a" not in cache
    with cache.lend("a", lambda: made.append(2) or ["other"]) as second:
        assert second is first
    with pytest.raises(RuntimeError):
        with cache.lend("a", lambda: ["other"]):
            raise RuntimeError("the block failed")
    assert "a" not in cache and made == [1]
