//! Typed response bodies (ecs-api.md §2). Lists arrive wrapped in an object named after the
//! element (`{"DedicatedHosts":{"DedicatedHost":[…]}}`); `ExpiredTime` has no seconds. The
//! emulator serializes the same types, and the official SDK checks the shapes from outside.

use serde::{Deserialize, Serialize};

use crate::domain::time::parse_instant;
use crate::domain::{ChargeType, Host, HostId, HostStatus};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeDedicatedHostsResponse {
    pub request_id: String,
    #[serde(default)]
    pub total_count: i64,
    #[serde(default)]
    pub page_number: i64,
    #[serde(default)]
    pub page_size: i64,
    /// Empty when there are no more pages.
    #[serde(default)]
    pub next_token: String,
    /// Required: an answer without the list is malformed, not "no hosts".
    pub dedicated_hosts: DedicatedHosts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DedicatedHosts {
    #[serde(default)]
    pub dedicated_host: Vec<DedicatedHost>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DedicatedHost {
    pub dedicated_host_id: String,
    #[serde(default)]
    pub dedicated_host_name: String,
    #[serde(default)]
    pub dedicated_host_type: String,
    pub region_id: String,
    #[serde(default)]
    pub zone_id: String,
    pub charge_type: String,
    #[serde(default)]
    pub sale_cycle: String,
    pub expired_time: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub operation_locks: OperationLocks,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationLocks {
    #[serde(default)]
    pub operation_lock: Vec<OperationLock>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationLock {
    pub lock_reason: String,
}

impl DedicatedHost {
    /// The inventory's view of this host; an error names the field ECS sent wrong.
    pub fn to_host(&self) -> Result<Host, String> {
        let id =
            HostId::parse(&self.dedicated_host_id).map_err(|e| format!("DedicatedHostId: {e}"))?;
        let charge_type = ChargeType::parse(&self.charge_type).ok_or_else(|| {
            format!(
                "{id}: ChargeType {:?} is not PrePaid or PostPaid",
                self.charge_type
            )
        })?;
        let expired_time =
            parse_instant(&self.expired_time).map_err(|e| format!("{id}: ExpiredTime: {e}"))?;
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Host {
            id,
            region_id: self.region_id.clone(),
            zone_id: nonempty(&self.zone_id),
            charge_type,
            status: HostStatus(if self.status.is_empty() {
                HostStatus::AVAILABLE.to_owned()
            } else {
                self.status.clone()
            }),
            expired_time,
            sale_cycle: nonempty(&self.sale_cycle),
            financial_lock: self
                .operation_locks
                .operation_lock
                .iter()
                .any(|l| l.lock_reason.eq_ignore_ascii_case("financial")),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeDedicatedHostAutoRenewResponse {
    pub request_id: String,
    /// Required: an answer without the list is malformed, not "no attributes".
    pub dedicated_host_renew_attributes: DedicatedHostRenewAttributes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DedicatedHostRenewAttributes {
    #[serde(default)]
    pub dedicated_host_renew_attribute: Vec<RenewAttribute>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RenewAttribute {
    pub dedicated_host_id: String,
    #[serde(default)]
    pub auto_renew_enabled: bool,
    #[serde(default)]
    pub auto_renew_with_ecs: String,
    #[serde(default)]
    pub duration: i64,
    #[serde(default)]
    pub period_unit: String,
    /// Required: the decision before a send rests on it.
    pub renewal_status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RenewDedicatedHostsResponse {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// The body of ModifyDedicatedHostAutoRenewAttribute and other RequestId-only answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestIdOnly {
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    //! The sample bodies of ecs-api.md §2.
    use super::*;

    #[test]
    fn describe_dedicated_hosts_sample() {
        let body = r#"{
          "RequestId": "9E9354D4-C89E-4A82-A70E-3EEAD6007885",
          "TotalCount": 1, "PageNumber": 1, "PageSize": 10, "NextToken": "",
          "DedicatedHosts": { "DedicatedHost": [ {
              "DedicatedHostId": "dh-bp165p6xk2tlw61e0001", "DedicatedHostName": "MyDDHTestName",
              "DedicatedHostType": "ddh.r6", "RegionId": "cn-hangzhou", "ZoneId": "cn-hangzhou-h",
              "ChargeType": "PrePaid", "SaleCycle": "Month", "ExpiredTime": "2024-02-01T16:00Z",
              "CreationTime": "2020-04-15T07:12Z", "AutoReleaseTime": "", "Status": "Available",
              "OperationLocks": { "OperationLock": [ { "LockReason": "financial" } ] },
              "Tags": { "Tag": [ { "TagKey": "k", "TagValue": "v" } ] },
              "Capacity": { "TotalVcpus": 104, "AvailableVcpus": 104 },
              "Cores": 52, "Sockets": 2, "CpuOverCommitRatio": 1.0
          } ] }
        }"#;
        let r: DescribeDedicatedHostsResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.next_token, "");
        let h = r.dedicated_hosts.dedicated_host[0].to_host().unwrap();
        assert_eq!(h.charge_type, ChargeType::PrePaid);
        assert!(h.financial_lock);
        assert_eq!(
            crate::domain::time::to_ecs(h.expired_time),
            "2024-02-01T16:00Z"
        );
        assert_eq!(h.zone_id.as_deref(), Some("cn-hangzhou-h"));
    }

    #[test]
    fn postpaid_sample_with_lowercase_charge_type() {
        let body = r#"{"RequestId":"x","DedicatedHosts":{"DedicatedHost":[{"DedicatedHostId":"dh-a","RegionId":"cn-hangzhou","ChargeType":"Postpaid","ExpiredTime":"2999-09-08T16:00Z","SaleCycle":""}]}}"#;
        let r: DescribeDedicatedHostsResponse = serde_json::from_str(body).unwrap();
        let h = r.dedicated_hosts.dedicated_host[0].to_host().unwrap();
        assert_eq!(h.charge_type, ChargeType::PostPaid);
        assert_eq!(h.sale_cycle, None);
    }

    #[test]
    fn auto_renew_sample() {
        let body = r#"{
          "RequestId": "04F0F334-1335-436C-A1D7-6C044FE73368",
          "DedicatedHostRenewAttributes": { "DedicatedHostRenewAttribute": [ {
              "DedicatedHostId": "dh-bp165p6xk2tlw61e0001", "AutoRenewEnabled": false,
              "AutoRenewWithEcs": "StopRenewWithEcs", "Duration": 0, "PeriodUnit": "Month",
              "RenewalStatus": "Normal" } ] }
        }"#;
        let r: DescribeDedicatedHostAutoRenewResponse = serde_json::from_str(body).unwrap();
        let a = &r
            .dedicated_host_renew_attributes
            .dedicated_host_renew_attribute[0];
        assert_eq!(a.renewal_status, "Normal");
        assert!(!a.auto_renew_enabled);
    }

    #[test]
    fn renew_and_modify_samples() {
        let r: RenewDedicatedHostsResponse = serde_json::from_str(
            r#"{ "RequestId": "2A4EA075-CB5B-41B7-B0EB-70D339F6****", "OrderId": "1234567890" }"#,
        )
        .unwrap();
        assert_eq!(r.order_id.as_deref(), Some("1234567890"));
        let r: RenewDedicatedHostsResponse =
            serde_json::from_str(r#"{"RequestId":"2A4EA075-CB5B-41B7-B0EB-70D339F64DE7"}"#)
                .unwrap();
        assert_eq!(r.order_id, None);
        let r: RequestIdOnly =
            serde_json::from_str(r#"{ "RequestId": "2A4EA075-CB5B-41B7-B0EB-70D339F6****" }"#)
                .unwrap();
        assert!(r.request_id.starts_with("2A4EA075"));
    }

    #[test]
    fn malformed_host_names_the_field() {
        let h = DedicatedHost {
            dedicated_host_id: "dh-a".into(),
            region_id: "cn-hangzhou".into(),
            charge_type: "PrePaid".into(),
            expired_time: "soon".into(),
            ..Default::default()
        };
        assert!(h.to_host().unwrap_err().contains("ExpiredTime"));
    }
}
