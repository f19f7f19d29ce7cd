"""The official Alibaba Cloud Python SDKs as the external judge of the ddh-renewd emulator.

Starts `ddh-renewd emulator` on a free loopback port, then drives it with
  (a) alibabacloud-ecs20140526, default V3 signature (ACS3-HMAC-SHA256),
  (b) the same client with signature_algorithm='v2' (V1 HMAC-SHA1),
  (c) the legacy aliyun-python-sdk-core AcsClient (V1),
through all four actions each, plus the ClientToken and signature cases, and the cloud's
stubbornness (a request processed after its client timed out), renewals by hand and cloud-side
auto-renew charges. Exits non-zero on the
first failed check and prints 'N passed, 0 failed' at the end.

Usage: python check_sdk.py PATH_TO_ddh-renewd
"""

import json
import subprocess
import sys
import time
import urllib.request

from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as om
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeDedicatedHostAutoRenewRequest import (
    DescribeDedicatedHostAutoRenewRequest,
)
from aliyunsdkecs.request.v20140526.DescribeDedicatedHostsRequest import DescribeDedicatedHostsRequest
from aliyunsdkecs.request.v20140526.ModifyDedicatedHostAutoRenewAttributeRequest import (
    ModifyDedicatedHostAutoRenewAttributeRequest,
)
from aliyunsdkecs.request.v20140526.RenewDedicatedHostsRequest import RenewDedicatedHostsRequest

AK = "LTAI5tTestKeyId000000000"
SK = "TestSecret0123456789abcdefghijk"
REGION = "cn-hangzhou"
ODD_NAME = "rack a*b~c \u4e2d"  # space, *, ~ and a non-ASCII character

passed = 0


def check(cond, what):
    global passed
    if not cond:
        print(f"FAIL: {what}", flush=True)
        print(f"0 passed, 1 failed")
        sys.exit(1)
    passed += 1
    print(f"ok   {what}", flush=True)


class Emulator:
    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "emulator", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        first = self.proc.stdout.readline().strip()
        if "listening on http://" not in first:
            self.stop()
            raise SystemExit(f"emulator did not start: {first!r}")
        self.base = first.split("listening on ", 1)[1]
        self.hostport = self.base.removeprefix("http://")

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/_emulator/{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tea_client(emu, secret=SK, v1=False, read_timeout=None):
    cfg = om.Config(
        access_key_id=AK,
        access_key_secret=secret,
        region_id=REGION,
        endpoint=emu.hostport,
        protocol="http",
    )
    if read_timeout is not None:
        cfg.read_timeout = read_timeout
    if v1:
        cfg.signature_algorithm = "v2"
    return Client(cfg)


def tea_error_code(fn):
    try:
        fn()
    except Exception as e:  # the SDK raises ClientException/ServerException subclasses
        return getattr(e, "code", None)
    return None


def ledger_for(emu, token):
    return [e for e in emu.admin("GET", "ledger") if e["ClientToken"] == token]


def run_tea(emu, label, v1):
    c = tea_client(emu, v1=v1)
    # DescribeDedicatedHosts: all, paged with NextToken.
    r = c.describe_dedicated_hosts(m.DescribeDedicatedHostsRequest(region_id=REGION, max_results=2))
    page1 = r.body.dedicated_hosts.dedicated_host
    check(len(page1) == 2 and r.body.next_token, f"{label}: DescribeDedicatedHosts page 1 parses, NextToken set")
    r2 = c.describe_dedicated_hosts(
        m.DescribeDedicatedHostsRequest(region_id=REGION, max_results=2, next_token=r.body.next_token)
    )
    ids = [h.dedicated_host_id for h in page1 + r2.body.dedicated_hosts.dedicated_host]
    check(sorted(ids) == ["dh-sdk-a", "dh-sdk-b", "dh-sdk-c", "dh-sdk-post"], f"{label}: pages cover every host")
    h = page1[0]
    check(h.charge_type == "PrePaid" and h.expired_time.endswith("Z") and len(h.expired_time) == 17,
          f"{label}: host fields typed as the SDK model expects ({h.expired_time})")
    # A value with a space, *, ~ and a non-ASCII character must verify and filter.
    r = c.describe_dedicated_hosts(m.DescribeDedicatedHostsRequest(region_id=REGION, dedicated_host_name=ODD_NAME))
    names = [x.dedicated_host_id for x in r.body.dedicated_hosts.dedicated_host]
    check(names == ["dh-sdk-c"], f"{label}: odd characters in a parameter sign and match ({names})")

    # DescribeDedicatedHostAutoRenew
    r = c.describe_dedicated_host_auto_renew(
        m.DescribeDedicatedHostAutoRenewRequest(region_id=REGION, dedicated_host_ids="dh-sdk-a,dh-sdk-b")
    )
    attrs = r.body.dedicated_host_renew_attributes.dedicated_host_renew_attribute
    check({a.dedicated_host_id for a in attrs} == {"dh-sdk-a", "dh-sdk-b"} and attrs[0].renewal_status,
          f"{label}: DescribeDedicatedHostAutoRenew parses")

    # ModifyDedicatedHostAutoRenewAttribute, then read it back.
    c.modify_dedicated_host_auto_renew_attribute(
        m.ModifyDedicatedHostAutoRenewAttributeRequest(
            region_id=REGION, dedicated_host_ids="dh-sdk-b", auto_renew=True, duration=3, period_unit="Month",
        )
    )
    r = c.describe_dedicated_host_auto_renew(
        m.DescribeDedicatedHostAutoRenewRequest(region_id=REGION, dedicated_host_ids="dh-sdk-b")
    )
    a = r.body.dedicated_host_renew_attributes.dedicated_host_renew_attribute[0]
    check(a.renewal_status == "AutoRenewal" and a.auto_renew_enabled and a.duration == 3,
          f"{label}: ModifyDedicatedHostAutoRenewAttribute applies (AutoRenew=True as the SDK spells it)")
    code = tea_error_code(lambda: c.modify_dedicated_host_auto_renew_attribute(
        m.ModifyDedicatedHostAutoRenewAttributeRequest(region_id=REGION, dedicated_host_ids="dh-sdk-post", auto_renew=True)))
    check(code == "ChargeTypeViolation", f"{label}: PostPaid host refused with ChargeTypeViolation ({code})")

    # RenewDedicatedHosts with a ClientToken: applied once.
    token = f"sdk-{label}-1"
    before = emu.admin("GET", "hosts")
    r = c.renew_dedicated_hosts(
        m.RenewDedicatedHostsRequest(region_id=REGION, dedicated_host_ids='["dh-sdk-a"]', period=1,
                                     period_unit="Month", client_token=token)
    )
    first_id = r.body.request_id
    check(bool(first_id), f"{label}: RenewDedicatedHosts answers a RequestId")
    entries = ledger_for(emu, token)
    check(len(entries) == 1 and entries[0]["DedicatedHostId"] == "dh-sdk-a",
          f"{label}: the renewal appears once in the ledger")
    exp_before = [x for x in before if x["DedicatedHostId"] == "dh-sdk-a"][0]["ExpiredTime"]
    check(entries[0]["ExpiredTimeBefore"] == exp_before, f"{label}: ledger shows the expiry before ({exp_before})")
    return c, token, first_id


def run_stubborn(emu):
    """Like the real cloud: a request whose client hung up is still processed to completion."""
    token = "sdk-stubborn-1"
    emu.admin("PUT", "faults", {"seed": 1, "rules": [
        {"action": "RenewDedicatedHosts", "kind": "delay", "ms": 1500, "count": 1}]})
    impatient = tea_client(emu, read_timeout=300)
    req = m.RenewDedicatedHostsRequest(region_id=REGION, dedicated_host_ids='["dh-sdk-c"]', period=1,
                                       period_unit="Month", client_token=token)
    failed = False
    try:
        impatient.renew_dedicated_hosts(req)
    except Exception:  # the SDK's read timeout
        failed = True
    check(failed, "a client that times out gets no answer")
    code = tea_error_code(lambda: tea_client(emu).renew_dedicated_hosts(req))
    check(code == "LastTokenProcessing", f"the same token while it is processed: LastTokenProcessing ({code})")
    for _ in range(100):
        if not emu.admin("GET", "inflight")["renewing"]:
            break
        time.sleep(0.05)
    check(len(ledger_for(emu, token)) == 1, "the request was processed after the client hung up: one ledger entry")
    again = tea_client(emu).renew_dedicated_hosts(req)
    check(bool(again.body.request_id) and len(ledger_for(emu, token)) == 1,
          "the same token again replays the success; still one ledger entry")
    emu.admin("PUT", "faults", [])

    # A renewal by hand, outside ddh-renewd.
    entries = emu.admin("POST", "renew", {"DedicatedHostIds": ["dh-sdk-c"], "Period": 1, "PeriodUnit": "Year"})
    check(len(entries) == 1 and entries[0]["Source"] == "elsewhere", "a hand renewal is in the ledger as 'elsewhere'")

    # Cloud-side auto-renew charges at 08:00 UTC+8 from nine days before expiry.
    emu.admin("PUT", "clock", {"now": "2029-12-31T00:00:00Z"})
    emu.admin("POST", "hosts", [{"DedicatedHostId": "dh-sdk-d", "RegionId": REGION, "ChargeType": "PrePaid",
                                 "ExpiredTime": "2030-01-10T16:00Z", "RenewalStatus": "AutoRenewal",
                                 "Duration": 1, "PeriodUnit": "Month"}])
    emu.admin("PUT", "clock", {"now": "2030-01-02T00:30:00Z"})
    r = tea_client(emu).describe_dedicated_hosts(
        m.DescribeDedicatedHostsRequest(region_id=REGION, dedicated_host_ids='["dh-sdk-d"]'))
    h = r.body.dedicated_hosts.dedicated_host[0]
    cloud = [e for e in emu.admin("GET", "ledger") if e["Source"] == "cloud" and e["DedicatedHostId"] == "dh-sdk-d"]
    check(h.expired_time == "2030-02-10T16:00Z" and len(cloud) == 1 and cloud[0]["At"] == "2030-01-02T00:00:00Z",
          f"cloud-side auto-renew charged once, at its first window ({h.expired_time})")


def run_legacy(emu):
    label = "legacy AcsClient"
    client = AcsClient(AK, SK, REGION, auto_retry=False)

    def do(req):
        req.set_endpoint(emu.hostport)
        req.set_protocol_type("http")
        req.set_accept_format("JSON")
        return json.loads(client.do_action_with_exception(req))

    req = DescribeDedicatedHostsRequest()
    req.set_MaxResults(100)
    r = do(req)
    ids = sorted(h["DedicatedHostId"] for h in r["DedicatedHosts"]["DedicatedHost"])
    check(ids == ["dh-sdk-a", "dh-sdk-b", "dh-sdk-c", "dh-sdk-post"], f"{label}: DescribeDedicatedHosts")
    req = DescribeDedicatedHostsRequest()
    req.set_DedicatedHostName(ODD_NAME)
    r = do(req)
    check([h["DedicatedHostId"] for h in r["DedicatedHosts"]["DedicatedHost"]] == ["dh-sdk-c"],
          f"{label}: odd characters in a parameter sign and match")
    req = DescribeDedicatedHostAutoRenewRequest()
    req.set_DedicatedHostIds("dh-sdk-a,dh-sdk-c")
    r = do(req)
    check(len(r["DedicatedHostRenewAttributes"]["DedicatedHostRenewAttribute"]) == 2,
          f"{label}: DescribeDedicatedHostAutoRenew")
    req = ModifyDedicatedHostAutoRenewAttributeRequest()
    req.set_DedicatedHostIds("dh-sdk-c")
    req.set_RenewalStatus("NotRenewal")
    req.set_AutoRenew(False)
    do(req)
    req = DescribeDedicatedHostAutoRenewRequest()
    req.set_DedicatedHostIds("dh-sdk-c")
    r = do(req)
    check(r["DedicatedHostRenewAttributes"]["DedicatedHostRenewAttribute"][0]["RenewalStatus"] == "NotRenewal",
          f"{label}: ModifyDedicatedHostAutoRenewAttribute applies")
    token = "sdk-legacy-1"
    req = RenewDedicatedHostsRequest()
    req.set_DedicatedHostIds('["dh-sdk-c"]')
    req.set_Period(1)
    req.set_PeriodUnit("Month")
    req.set_ClientToken(token)
    r = do(req)
    check(bool(r["RequestId"]), f"{label}: RenewDedicatedHosts answers a RequestId")
    check(len(ledger_for(emu, token)) == 1, f"{label}: the renewal appears once in the ledger")
    bad = AcsClient(AK, "wrong-secret", REGION, auto_retry=False)
    req = DescribeDedicatedHostsRequest()
    req.set_endpoint(emu.hostport)
    req.set_protocol_type("http")
    try:
        bad.do_action_with_exception(req)
        code = None
    except ServerException as e:
        code = e.get_error_code()
    # aliyunsdkcore turns a 400 SignatureDoesNotMatch into its own InvalidAccessKeySecret; check
    # both what the SDK raised and what the emulator answered.
    last = emu.admin("GET", "requests")[-1]
    check(code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret")
          and (last["Status"], last["Code"]) == (400, "SignatureDoesNotMatch"),
          f"{label}: a wrong secret gets 400 SignatureDoesNotMatch (SDK reports {code})")


def main():
    binary = sys.argv[1]
    emu = Emulator(binary)
    try:
        emu.admin("POST", "reset")
        emu.admin("POST", "hosts", [
            {"DedicatedHostId": "dh-sdk-a", "RegionId": REGION, "ChargeType": "PrePaid",
             "ExpiredTime": "2026-12-10T16:00Z", "RenewalStatus": "Normal"},
            {"DedicatedHostId": "dh-sdk-b", "RegionId": REGION, "ChargeType": "PrePaid",
             "ExpiredTime": "2026-12-11T01:00Z"},
            {"DedicatedHostId": "dh-sdk-c", "RegionId": REGION, "ChargeType": "PrePaid",
             "ExpiredTime": "2027-01-31T16:00Z", "DedicatedHostName": ODD_NAME},
            {"DedicatedHostId": "dh-sdk-post", "RegionId": REGION, "ChargeType": "PostPaid"},
        ])
        v3, token, first_id = run_tea(emu, "V3 client", v1=False)
        run_tea(emu, "V1 client (signature_algorithm=v2)", v1=True)
        run_legacy(emu)

        # Idempotence, through the V3 client.
        req = m.RenewDedicatedHostsRequest(region_id=REGION, dedicated_host_ids='["dh-sdk-a"]', period=1,
                                           period_unit="Month", client_token=token)
        again = v3.renew_dedicated_hosts(req)
        check(again.body.request_id == first_id, "repeated ClientToken returns the same RequestId")
        check(len(ledger_for(emu, token)) == 1, "repeated ClientToken adds no second ledger entry")
        other = m.RenewDedicatedHostsRequest(region_id=REGION, dedicated_host_ids='["dh-sdk-a"]', period=2,
                                             period_unit="Month", client_token=token)
        code = tea_error_code(lambda: v3.renew_dedicated_hosts(other))
        check(code == "IdempotenceParamNotMatch", f"same token, other params: IdempotenceParamNotMatch ({code})")
        check(len(ledger_for(emu, token)) == 1, "a mismatched token changes nothing")

        for label, v1 in (("V3", False), ("V1", True)):
            bad = tea_client(emu, secret="wrong-secret", v1=v1)
            code = tea_error_code(lambda: bad.describe_dedicated_hosts(
                m.DescribeDedicatedHostsRequest(region_id=REGION)))
            check(code == "SignatureDoesNotMatch", f"{label}: a wrong secret gets SignatureDoesNotMatch ({code})")

        log = emu.admin("GET", "requests")
        ok_versions = {e["SignatureVersion"] for e in log if e["Verified"]}
        check(ok_versions == {"v1", "v3"}, f"the emulator verified both signature versions ({sorted(ok_versions)})")
        actions = {e["Action"] for e in log if e["Verified"]}
        check({"DescribeDedicatedHosts", "DescribeDedicatedHostAutoRenew", "RenewDedicatedHosts",
               "ModifyDedicatedHostAutoRenewAttribute"} <= actions, "all four actions were served")
        run_stubborn(emu)
    finally:
        emu.stop()
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    main()
