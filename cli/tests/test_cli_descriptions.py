"""Description files for `apply`: read from YAML, JSON and directories, checked, grouped by cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ecs_image_updater_cli.apply import apply_bodies
from ecs_image_updater_cli.descriptions import by_cluster, load_descriptions
from ecs_image_updater_cli.exits import RefusedError

WEB_YAML = "cluster: prod\nservice: web\ncontainers:\n  app: repo/web:1.4.2\n"


def write(directory: Path, name: str, text: str) -> Path:
    """Write `text` to `directory/name`."""
    path = directory / name
    path.write_text(text)
    return path


def test_a_yaml_file_is_one_description(tmp_path: Path) -> None:
    [described] = load_descriptions([str(write(tmp_path, "web.yaml", WEB_YAML))])
    assert described.description == {"cluster": "prod", "service": "web", "containers": {"app": "repo/web:1.4.2"}}
    assert described.source.endswith("web.yaml")


def test_a_json_file_is_read_as_json(tmp_path: Path) -> None:
    body = {"cluster": "prod", "service": "api", "containers": {"app": "repo/api:2"}}
    [described] = load_descriptions([str(write(tmp_path, "api.json", json.dumps(body)))])
    assert described.description == body


def test_a_directory_means_its_yaml_yml_and_json_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", WEB_YAML.replace("web", "b"))
    write(tmp_path, "a.yaml", WEB_YAML.replace("web", "a"))
    write(tmp_path, "c.json", json.dumps({"cluster": "prod", "service": "c", "containers": {"app": "r:1"}}))
    write(tmp_path, "notes.txt", "not a description")
    described = load_descriptions([str(tmp_path)])
    assert [item.service_name for item in described] == ["a", "b", "c"]


def test_a_file_may_hold_a_list_or_several_documents(tmp_path: Path) -> None:
    text = f"{WEB_YAML}---\n- cluster: prod\n  service: worker\n  containers: {{app: 'repo/web:1.4.2'}}\n"
    described = load_descriptions([str(write(tmp_path, "all.yaml", text))])
    assert [item.service_name for item in described] == ["web", "worker"]
    assert described[1].source.endswith("all.yaml (description 2)")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- just\n- a list\n", "a description is a mapping"),
        ("cluster: prod\nservice: web\n", "'containers' must map"),
        ("cluster: prod\nservice: web\ncontainers: {}\n", "'containers' must map"),
        ("service: web\ncontainers: {app: 'r:1'}\n", "'cluster' must be"),
        ("cluster: prod\nservice: 7\ncontainers: {app: 'r:1'}\n", "'service' must be"),
        ("cluster: prod\nservice: web\ncontainers: {app: 1.27}\n", "quote it in YAML"),
        (WEB_YAML + "desiredCount: 3\n", "unknown field(s) desiredCount"),
        ("cluster: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_wrong_description_is_refused_naming_its_file(tmp_path: Path, text: str, complaint: str) -> None:
    path = write(tmp_path, "broken.yaml", text)
    with pytest.raises(RefusedError) as refused:
        load_descriptions([str(path)])
    assert complaint in refused.value.message
    assert str(path) in refused.value.message


def test_a_missing_path_or_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="no such file"):
        load_descriptions([str(tmp_path / "nope.yaml")])
    with pytest.raises(RefusedError, match="holds no"):
        load_descriptions([str(tmp_path)])


def test_descriptions_are_grouped_by_cluster_name_even_when_one_names_it_by_arn(tmp_path: Path) -> None:
    arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"
    write(tmp_path, "1.yaml", WEB_YAML)
    write(tmp_path, "2.yaml", WEB_YAML.replace("cluster: prod", f"cluster: {arn}").replace("web", "worker"))
    write(tmp_path, "3.yaml", WEB_YAML.replace("prod", "staging"))
    groups = by_cluster(load_descriptions([str(tmp_path)]))
    assert {cluster: [item.service_name for item in group] for cluster, group in groups.items()} == {
        "prod": ["web", "worker"],
        "staging": ["web"],
    }
    bodies = apply_bodies(groups, dry_run=True)
    assert [len(body["descriptions"]) for body in bodies] == [2, 1]
    assert all(body["dryRun"] is True for body in bodies)


def test_a_service_described_twice_is_refused_naming_both_files(tmp_path: Path) -> None:
    first, second = write(tmp_path, "a.yaml", WEB_YAML), write(tmp_path, "b.yaml", WEB_YAML)
    with pytest.raises(RefusedError) as refused:
        by_cluster(load_descriptions([str(first), str(second)]))
    assert str(first) in refused.value.message
    assert str(second) in refused.value.message


def test_more_than_twenty_services_of_one_cluster_are_refused(tmp_path: Path) -> None:
    for number in range(21):
        write(tmp_path, f"s{number:02d}.yaml", WEB_YAML.replace("service: web", f"service: s{number}"))
    with pytest.raises(RefusedError, match="at most 20"):
        by_cluster(load_descriptions([str(tmp_path)]))
