# -*- coding: utf-8 -*-
"""The execution environment: ansible-builder renders a build context holding iotfleet.aws and its
collections, and its introspection finds iotfleet.aws's Python and system requirements."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")

pytestmark = pytest.mark.skipif(not os.path.exists(BUILDER), reason="ansible-builder is not installed (make venv)")


def test_create_renders_a_context_with_the_collection(tmp_path):
    ctx = tmp_path / "context"
    subprocess.run([BUILDER, "create", "-f", os.path.join(ROOT, "execution-environment.yml"), "-c", str(ctx)],
                   check=True, capture_output=True, text=True)
    galaxy = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    names = [c["name"] for c in galaxy["collections"]]
    assert names == ["iotfleet.aws", "amazon.aws", "community.crypto"]
    assert "ansible-galaxy" in (ctx / "Containerfile").read_text()


def test_introspection_finds_the_collection_requirements(tmp_path):
    collections = tmp_path / "ansible_collections" / "iotfleet"
    collections.mkdir(parents=True)
    aws = collections / "aws"
    aws.mkdir()
    for name in ("meta", "requirements.txt", "bindep.txt", "galaxy.yml"):
        src = os.path.join(ROOT, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, aws / name)
    out = subprocess.run([BUILDER, "introspect", str(tmp_path)], check=True, capture_output=True, text=True).stdout
    for line in ("boto3>=1.35.0  # from collection iotfleet.aws", "cryptography>=41.0.0  # from collection iotfleet.aws",
                 "openssh-client [platform:dpkg]  # from collection iotfleet.aws"):
        assert line in out, out


def test_both_files_exclude_aiobotocore():
    """amazon.aws's aiobotocore (event-source plugins only) made pip backtrack for minutes per stage."""
    for name in ("execution-environment.yml", "execution-environment-local.yml"):
        with open(os.path.join(ROOT, name)) as f:
            ee = yaml.safe_load(f)
        assert ee["dependencies"]["exclude"]["python"] == ["aiobotocore"], name


def test_local_file_renders_an_offline_apt_context(tmp_path):
    """execution-environment-local.yml (make ee): the local Debian base, the collections as tarballs
    from the build context installed --offline, apt behind ansible-builder's dnf calls."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "scripts", "ee"), src / "scripts" / "ee")
    shutil.copy(os.path.join(ROOT, "execution-environment-local.yml"), src)
    tarballs = src / ".cache" / "ee" / "collections"
    tarballs.mkdir(parents=True)
    for name in ("iotfleet-aws", "amazon-aws", "community-crypto"):
        (tarballs / f"{name}.tar.gz").write_bytes(b"")
    ctx = tmp_path / "context"
    subprocess.run([BUILDER, "create", "-f", str(src / "execution-environment-local.yml"), "-c", str(ctx)],
                   check=True, capture_output=True, text=True)
    containerfile = (ctx / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="localhost/iotfleet-ee-base:bookworm"' in containerfile
    assert 'ARG PKGMGR="/usr/local/bin/apt-pkgmgr"' in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert "COPY _build/iotfleet/apt-pkgmgr /usr/local/bin/apt-pkgmgr" in containerfile
    assert "pip_install" not in containerfile  # Debian's python3-pip, not ensurepip
    galaxy = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert [c["type"] for c in galaxy["collections"]] == ["file"] * 3
    for entry in galaxy["collections"]:
        assert (ctx / "_build" / entry["name"]).is_file(), entry
    assert os.access(ctx / "_build" / "iotfleet" / "apt-pkgmgr", os.X_OK)
