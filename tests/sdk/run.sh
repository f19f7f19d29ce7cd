#!/usr/bin/env bash
# Runs the official Alibaba Cloud Python SDKs against the emulator (see check_sdk.py and
# check_credentials.py).
# Makes a venv under target/ (reused when present) and installs the SDKs from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import alibabacloud_ecs20140526, aliyunsdkcore, aliyunsdkecs, alibabacloud_credentials.provider" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi
cargo build --quiet --locked --bin ddh-renewd
"$venv/bin/python" tests/sdk/check_sdk.py target/debug/ddh-renewd
# The official credentials library against the emulator's metadata service, STS and credentials URI.
(cd tests/sdk && "../../$venv/bin/python" check_credentials.py ../../target/debug/ddh-renewd)
