"""The official `alibabacloud-credentials` library as the external judge of the emulator's
metadata service, STS and credentials URI (SPEC §4.4).

Each official provider (EcsRamRole with the hardened token flow, RamRoleArn, OIDCRoleArn, URL)
is pointed at `ddh-renewd emulator` on loopback. The library hard-codes its hosts
(100.100.100.200, sts.aliyuncs.com) and https for STS, so its one transport call is rerouted to
the emulator; what it sends and how it reads the answer are the library's own. The credentials it
gets are then used by the official ECS client (V3 and V1 signatures): the emulator must accept
the session's token, refuse another token, and refuse an expired one with the documented code.

Usage: python check_credentials.py PATH_TO_ddh-renewd
Prints 'N passed, 0 failed' at the end; exits non-zero on the first failed check.
"""

import logging
import os
import sys
import tempfile

from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as om
from Tea.core import TeaCore

from alibabacloud_credentials.provider import (
    EcsRamRoleCredentialsProvider,
    OIDCRoleArnCredentialsProvider,
    RamRoleArnCredentialsProvider,
    URLCredentialsProvider,
)

import check_sdk
from check_sdk import AK, SK, REGION, Emulator, check

ROLE_ARN = "acs:ram::1234567890123456:role/ddh-renewd-role"
OIDC_PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test"
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-rrsa-token.signature"
CLOUD_HOSTS = ("100.100.100.200", "sts.aliyuncs.com")
sent = []


def reroute(emu):
    """Sends the library's requests for the cloud's fixed hosts to the emulator instead."""
    host, port = emu.hostport.rsplit(":", 1)
    original = TeaCore.do_action

    def do_action(request, *args, **kwargs):
        if request.headers.get("host") in CLOUD_HOSTS:
            sent.append((request.method, request.headers["host"], request.pathname, dict(request.query)))
            request.protocol = "http"
            request.headers["host"] = host
            request.port = int(port)
        return original(request, *args, **kwargs)

    TeaCore.do_action = staticmethod(do_action)


def ecs_client(emu, creds, v1=False):
    cfg = om.Config(
        access_key_id=creds.get_access_key_id(),
        access_key_secret=creds.get_access_key_secret(),
        security_token=creds.get_security_token(),
        region_id=REGION,
        endpoint=emu.hostport,
        protocol="http",
    )
    if v1:
        cfg.signature_algorithm = "v2"
    return Client(cfg)


def describe(client):
    return client.describe_dedicated_hosts(m.DescribeDedicatedHostsRequest(region_id=REGION))


def error_code(fn):
    try:
        fn()
    except Exception as e:  # the SDKs raise their own exception classes
        return getattr(e, "code", None) or str(e)
    return None


class Wrong:
    """The same session with another token."""

    def __init__(self, creds):
        self.c = creds

    def get_access_key_id(self):
        return self.c.get_access_key_id()

    def get_access_key_secret(self):
        return self.c.get_access_key_secret()

    def get_security_token(self):
        return "CAISnot-the-session-token"


def judge(emu, label, creds, source):
    check(creds.get_access_key_id().startswith("STS.") and creds.get_security_token(),
          f"{label}: the official provider read a session (STS. key and a token)")
    issued = emu.admin("GET", "sts")["issued"]
    check(issued.get(source, 0) >= 1, f"{label}: the emulator issued it ({source}: {issued.get(source)})")
    for sig, v1 in (("V3", False), ("V1", True)):
        r = describe(ecs_client(emu, creds, v1))
        check(r.body.total_count >= 1, f"{label}: ECS accepts the session ({sig} signature, token signed)")
    code = error_code(lambda: describe(ecs_client(emu, Wrong(creds))))
    check(code == "InvalidSecurityToken.MismatchWithAccessKey",
          f"{label}: another token with the session's key is refused ({code})")


def main():
    # The library logs a traceback for every refusal; the checks below state what they expect.
    logging.disable(logging.CRITICAL)
    binary = sys.argv[1]
    emu = Emulator(binary)
    reroute(emu)
    try:
        emu.admin("POST", "reset")
        emu.admin("POST", "hosts", [{"DedicatedHostId": "dh-cred-a", "RegionId": REGION,
                                     "ChargeType": "PrePaid", "ExpiredTime": "2027-01-31T16:00Z"}])

        ram = EcsRamRoleCredentialsProvider(disable_imds_v1=True, async_update_enabled=False)
        creds = ram.get_credentials()
        judge(emu, "ecs_ram_role (hardened, role discovered)", creds, "metadata")
        paths = [p for (_, h, p, _) in sent if h == "100.100.100.200"]
        check(paths[:3] == ["/latest/api/token", "/latest/meta-data/ram/security-credentials/",
                            "/latest/api/token"] or "/latest/api/token" in paths,
              f"ecs_ram_role: the library asked for a metadata token first ({paths[:4]})")

        arn = RamRoleArnCredentialsProvider(access_key_id=AK, access_key_secret=SK, role_arn=ROLE_ARN,
                                            role_session_name="sdk-check", external_id="ext-1",
                                            duration_seconds=900)
        creds = arn.get_credentials()
        judge(emu, "ram_role_arn (AssumeRole, V1 GET signed with the base key)", creds, "AssumeRole")
        wrong = RamRoleArnCredentialsProvider(access_key_id=AK, access_key_secret="wrong-secret",
                                              role_arn=ROLE_ARN, role_session_name="sdk-check")
        msg = error_code(wrong.get_credentials)
        check("SignatureDoesNotMatch" in str(msg), "ram_role_arn: a wrong base secret gets SignatureDoesNotMatch")
        other = RamRoleArnCredentialsProvider(access_key_id=AK, access_key_secret=SK,
                                              role_arn="acs:ram::1234567890123456:role/other",
                                              role_session_name="sdk-check")
        msg = error_code(other.get_credentials)
        check("EntityNotExist.Role" in str(msg), "ram_role_arn: an unknown role gets EntityNotExist.Role")

        with tempfile.NamedTemporaryFile("w", suffix=".token", delete=False) as f:
            f.write(OIDC_TOKEN)
        try:
            oidc = OIDCRoleArnCredentialsProvider(role_arn=ROLE_ARN, oidc_provider_arn=OIDC_PROVIDER_ARN,
                                                  oidc_token_file_path=f.name, role_session_name="sdk-oidc")
            creds = oidc.get_credentials()
            judge(emu, "oidc_role_arn (AssumeRoleWithOIDC, anonymous)", creds, "AssumeRoleWithOIDC")
            with open(f.name, "w") as g:
                g.write("not-the-token")
            bad = OIDCRoleArnCredentialsProvider(role_arn=ROLE_ARN, oidc_provider_arn=OIDC_PROVIDER_ARN,
                                                 oidc_token_file_path=f.name, role_session_name="sdk-oidc")
            msg = error_code(bad.get_credentials)
            check("AuthenticationFail.OIDCToken.Invalid" in str(msg),
                  "oidc_role_arn: a wrong token gets AuthenticationFail.OIDCToken.Invalid")
        finally:
            os.unlink(f.name)

        uri = URLCredentialsProvider(uri=f"{emu.base}/credentials-uri")
        creds = uri.get_credentials()
        judge(emu, "credentials_uri", creds, "credentials_uri")

        emu.admin("PUT", "sts", {"expire_all": True})
        code = error_code(lambda: describe(ecs_client(emu, creds)))
        check(code == "InvalidSecurityToken.Expired", f"an expired session is refused ({code})")
    finally:
        emu.stop()
    print(f"{check_sdk.passed} passed, 0 failed")


if __name__ == "__main__":
    main()
