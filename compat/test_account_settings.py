"""PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting, ListAccountSettings."""

from __future__ import annotations

import pytest

from berthlib import expect_error, uid


def _settings(ecs, **kw):
    out = []
    for page in ecs.get_paginator("list_account_settings").paginate(**kw):
        out.extend(page["settings"])
    return out


def _by_name(settings):
    return {s["name"]: s for s in settings}


def test_effective_defaults(ecs, berth):
    eff = _by_name(_settings(ecs, effectiveSettings=True))
    for name in ("serviceLongArnFormat", "taskLongArnFormat", "containerInstanceLongArnFormat"):
        assert name in eff, sorted(eff)
        assert eff[name]["value"] == "enabled", eff[name]
    for s in eff.values():
        assert s["principalArn"].startswith(f"arn:aws:iam::{berth.account}:"), s
        assert isinstance(s["value"], str)
    if "awsvpcTrunking" in eff:
        assert eff["awsvpcTrunking"]["value"] in ("enabled", "disabled")


def test_effective_setting_by_name(ecs):
    resp = ecs.list_account_settings(name="taskLongArnFormat", effectiveSettings=True)
    assert [s["name"] for s in resp["settings"]] == ["taskLongArnFormat"]
    assert resp["settings"][0]["value"] == "enabled"


def test_put_list_delete(ecs, berth):
    put = ecs.put_account_setting(name="containerInstanceLongArnFormat", value="disabled")["setting"]
    assert put["name"] == "containerInstanceLongArnFormat" and put["value"] == "disabled"
    assert put["principalArn"].startswith(f"arn:aws:iam::{berth.account}:")
    try:
        mine = _by_name(_settings(ecs, name="containerInstanceLongArnFormat"))
        assert mine["containerInstanceLongArnFormat"]["value"] == "disabled"
        eff = _by_name(_settings(ecs, effectiveSettings=True))
        assert eff["containerInstanceLongArnFormat"]["value"] == "disabled"
        filtered = ecs.list_account_settings(name="containerInstanceLongArnFormat", value="disabled")["settings"]
        assert [s["value"] for s in filtered] == ["disabled"]
        assert ecs.list_account_settings(name="containerInstanceLongArnFormat", value="enabled")["settings"] == []
    finally:
        deleted = ecs.delete_account_setting(name="containerInstanceLongArnFormat")["setting"]
    assert deleted["name"] == "containerInstanceLongArnFormat"
    assert "containerInstanceLongArnFormat" not in _by_name(_settings(ecs))
    eff = _by_name(_settings(ecs, effectiveSettings=True))
    assert eff["containerInstanceLongArnFormat"]["value"] == "enabled"


def test_put_overwrites(ecs):
    try:
        ecs.put_account_setting(name="serviceLongArnFormat", value="disabled")
        ecs.put_account_setting(name="serviceLongArnFormat", value="enabled")
        mine = [s for s in _settings(ecs) if s["name"] == "serviceLongArnFormat"]
        assert [s["value"] for s in mine] == ["enabled"]
    finally:
        ecs.delete_account_setting(name="serviceLongArnFormat")


def test_put_account_setting_default(ecs, berth):
    resp = ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")["setting"]
    try:
        assert resp["name"] == "awsvpcTrunking" and resp["value"] == "enabled"
        assert resp["principalArn"] == f"arn:aws:iam::{berth.account}:root"
        eff = _by_name(_settings(ecs, effectiveSettings=True))
        assert eff["awsvpcTrunking"]["value"] == "enabled"
    finally:
        ecs.put_account_setting_default(name="awsvpcTrunking", value="disabled")
    eff = _by_name(_settings(ecs, effectiveSettings=True))
    assert eff["awsvpcTrunking"]["value"] == "disabled"


def test_container_insights_account_default_applies_to_new_clusters(ecs):
    """A cluster created without settings inherits the account's containerInsights setting."""
    ecs.put_account_setting(name="containerInsights", value="enabled")
    try:
        name = uid("ci")
        ecs.create_cluster(clusterName=name)
        c = ecs.describe_clusters(clusters=[name], include=["SETTINGS"])["clusters"][0]
        assert {"name": "containerInsights", "value": "enabled"} in c["settings"], c.get("settings")
    finally:
        ecs.delete_account_setting(name="containerInsights")


def test_invalid_setting_name(ecs_raw):
    expect_error(lambda: ecs_raw.put_account_setting(name="notASetting", value="enabled"), "InvalidParameterException")
    expect_error(lambda: ecs_raw.put_account_setting_default(name="notASetting", value="enabled"), "InvalidParameterException")
    expect_error(lambda: ecs_raw.list_account_settings(name="notASetting"), "InvalidParameterException")
    expect_error(lambda: ecs_raw.delete_account_setting(name="notASetting"), "InvalidParameterException")


@pytest.mark.parametrize("name,value", [("serviceLongArnFormat", "maybe"), ("containerInsights", "sometimes"),
                                        ("awsvpcTrunking", "")])
def test_invalid_setting_value(ecs_raw, name, value):
    expect_error(lambda: ecs_raw.put_account_setting(name=name, value=value), "InvalidParameterException")
