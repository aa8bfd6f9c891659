import pytest

from interp.errors import UserError
from interp.probes.number_sets import all_numbers, parse_numbers, random_numbers, read_numbers_file


def test_parse_keeps_leading_zeros_and_order():
    assert parse_numbers("087, 747 087\n1") == ["087", "747", "1"]


@pytest.mark.parametrize("bad", ["٠٨٧", "12a", "²", "-5", "1.5", "８７"])
def test_parse_rejects_non_ascii_digits(bad):
    with pytest.raises(UserError, match="ASCII digits"):
        parse_numbers(bad)


def test_random_numbers_distinct_seeded_and_excluding():
    a = random_numbers(3, 200, seed=1)
    assert len(set(a)) == 200 and all(len(x) == 3 and x.isdigit() for x in a)
    assert a == random_numbers(3, 200, seed=1)
    assert a != random_numbers(3, 200, seed=2)
    b = random_numbers(1, 8, seed=0, exclude={"3", "7"})
    assert sorted(b) == ["0", "1", "2", "4", "5", "6", "8", "9"]
    with pytest.raises(UserError):
        random_numbers(1, 11)


def test_all_numbers_and_file(tmp_path):
    assert all_numbers(2)[:3] == ["00", "01", "02"] and len(all_numbers(2)) == 100
    f = tmp_path / "n.txt"
    f.write_text("087\n747\n")
    assert read_numbers_file(f) == ["087", "747"]
    with pytest.raises(UserError, match="does not exist"):
        read_numbers_file(tmp_path / "missing.txt")
