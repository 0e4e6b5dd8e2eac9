"""The `lookgraph` command line, as a user runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lookgraph.cli import app

runner = CliRunner()


def test_demo_load_stats_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    demo = tmp_path / "demo"
    result = runner.invoke(app, ["demo-data", str(demo), "--products", "200", "--shoppers", "10", "--events", "300"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["load", str(demo)])
    assert result.exit_code == 0, result.output
    assert "300 new events" in result.output
    result = runner.invoke(app, ["load", str(demo)])
    assert "(0 new events)" in result.output
    result = runner.invoke(app, ["stats", "--json"])
    stats = json.loads(result.output)
    assert stats["nodes"]["Product"] == 200 and stats["relationships"]["INTERACTED"] == 300
    assert stats["top_categories"][0]["id"] == "fashion"
    assert (tmp_path / "home" / "graph.db").exists()


def test_bad_input_exits_2_with_the_place_at_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    demo = tmp_path / "demo"
    runner.invoke(app, ["demo-data", str(demo), "--products", "200", "--shoppers", "5", "--events", "50"])
    with open(demo / "events.csv", "a", encoding="utf-8") as f:
        f.write("e-bad,2026-01-01,s-x,p999999,view,u000001,,\n")
    result = runner.invoke(app, ["load", str(demo)])
    assert result.exit_code == 2
    assert "events.csv:52: product_id: unknown product 'p999999'" in result.output
    assert "nothing was loaded" in result.output
    assert json.loads(runner.invoke(app, ["stats", "--json"]).output)["nodes"]["Product"] == 0


def test_neo4j_without_a_uri_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["stats", "--store", "neo4j"])
    assert result.exit_code == 2 and "needs NEO4J_URI" in result.output


def test_every_command_has_help():
    for command in ([], ["demo-data"], ["load"], ["stats"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
