"""The mutation run's report (tests/mutation.py): what counts as killed, survived, not run and equivalent."""
import json

from mutation import equivalent_mutants, main, results, scores


def test_scores_count_kills_survivors_and_equivalents_per_module(tmp_path, capsys, monkeypatch):
    meta = tmp_path / "mutants" / "birdseg"
    meta.mkdir(parents=True)
    codes = {"birdseg.a.x_f__mutmut_1": 1, "birdseg.a.x_f__mutmut_2": 36, "birdseg.a.x_f__mutmut_10": 0,
             "birdseg.a.x_f__mutmut_3": 0, "birdseg.a.x_g__mutmut_1": 33, "birdseg.a.x_g__mutmut_2": -11}
    (meta / "a.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    (meta / "b.py.meta").write_text(json.dumps({"exit_code_by_key": {"birdseg.b.x_h__mutmut_1": 1,
                                                                     "birdseg.b.x_h__mutmut_2": None}}))
    listed = tmp_path / "equivalents.txt"
    listed.write_text("# comment\nbirdseg.a.x_f__mutmut_3  a copy that cannot differ\nbirdseg.gone__mutmut_1  old\n")
    equivalents = equivalent_mutants(listed)
    assert equivalents == {"birdseg.a.x_f__mutmut_3": "a copy that cannot differ", "birdseg.gone__mutmut_1": "old"}
    rows, survivors = scores(results(tmp_path / "mutants"), equivalents)
    # a: 6 mutants, 3 detected (killed, timeout, crash), 1 equivalent: 3 of 5
    assert rows == [("birdseg/a.py", 6, 0, "3 (1)", 2, 1, 0.6), ("birdseg/b.py", 2, 1, "1 (0)", 0, 0, 1.0)]
    assert survivors["birdseg/a.py"] == ["birdseg.a.x_f__mutmut_10", "birdseg.a.x_g__mutmut_1"]
    monkeypatch.setattr("mutation.ROOT", tmp_path)
    monkeypatch.setattr("mutation.EQUIVALENTS", listed)
    assert main(["--report"]) == 1
    printed = capsys.readouterr().out
    assert "birdseg/a.py                       6       0              3 (1)        2          1  60.0%" in printed
    assert "not among the mutants (the function changed? renumbered?): birdseg.gone__mutmut_1" in printed
    assert "under 90%, or not every mutant run: birdseg/a.py, birdseg/b.py" in printed
