//! AccessKey credentials (SPEC §4.2): environment, systemd `LoadCredential=`, a key file, or the
//! aliyun CLI profile. The secret lives in [`Secret`], whose `Debug` never shows it and which has
//! no `Display` at all.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{CredentialSource, CredentialsConfig};

/// A secret string. `Debug` prints `Secret(***)`; the value is reachable only through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub security_token: Option<Secret>,
}

impl Credentials {
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access_key_id: id.into(),
            access_key_secret: Secret::new(secret),
            security_token: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credentials (source = \"env\"): {0} is not set")]
    EnvMissing(&'static str),
    #[error(
        "credentials (source = \"systemd\"): $CREDENTIALS_DIRECTORY is not set; add LoadCredential=access_key_id:… and LoadCredential=access_key_secret:… to the unit"
    )]
    NoCredentialsDirectory,
    #[error("credentials: cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "credentials: key file {path} is readable or writable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Insecure { path: PathBuf, mode: u32 },
    #[error("credentials: {path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("credentials (source = \"profile\"): {0}")]
    Profile(String),
    /// A short-lived source could not give credentials (metadata service, STS, a URI).
    #[error("credentials (source = \"{from}\"): {message}")]
    Fetch { from: &'static str, message: String },
}

pub const ENV_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

/// Loads credentials per `[credentials]`. `env` reads an environment variable (a parameter so
/// tests need not mutate the process environment).
pub fn load(
    cfg: &CredentialsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, CredentialError> {
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    match cfg.source {
        CredentialSource::Env => Ok(Credentials {
            access_key_id: nonempty(ENV_ID).ok_or(CredentialError::EnvMissing(ENV_ID))?,
            access_key_secret: Secret::new(
                nonempty(ENV_SECRET).ok_or(CredentialError::EnvMissing(ENV_SECRET))?,
            ),
            security_token: nonempty(ENV_TOKEN).map(Secret::new),
        }),
        CredentialSource::Systemd => {
            let dir = nonempty("CREDENTIALS_DIRECTORY")
                .map(PathBuf::from)
                .ok_or(CredentialError::NoCredentialsDirectory)?;
            let read = |name: &str| -> Result<Option<String>, CredentialError> {
                let p = dir.join(name);
                match std::fs::read_to_string(&p) {
                    Ok(s) => Ok(Some(s.trim().to_owned())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CredentialError::Read {
                        path: p,
                        message: e.to_string(),
                    }),
                }
            };
            let need = |name: &str| {
                read(name)?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| CredentialError::Read {
                        path: dir.join(name),
                        message: "missing or empty (LoadCredential= provides it)".into(),
                    })
            };
            Ok(Credentials {
                access_key_id: need("access_key_id")?,
                access_key_secret: Secret::new(need("access_key_secret")?),
                security_token: read("security_token")?
                    .filter(|s| !s.is_empty())
                    .map(Secret::new),
            })
        }
        CredentialSource::File => {
            let path = cfg
                .file
                .as_deref()
                .ok_or_else(|| CredentialError::Malformed {
                    path: PathBuf::new(),
                    message: "credentials.file is not set".into(),
                })?;
            load_key_file(path)
        }
        CredentialSource::EcsRamRole
        | CredentialSource::RamRoleArn
        | CredentialSource::OidcRoleArn
        | CredentialSource::CredentialsUri
        | CredentialSource::Default => Err(CredentialError::Fetch {
            from: "static",
            message: "a short-lived source is read through ecs::provider::Provider".into(),
        }),
        CredentialSource::Profile => {
            let home = nonempty("HOME").ok_or_else(|| {
                CredentialError::Profile(
                    "$HOME is not set, so ~/.aliyun/config.json cannot be found".into(),
                )
            })?;
            load_profile(&Path::new(&home).join(".aliyun/config.json"), &cfg.profile)
        }
    }
}

/// A key file: JSON `{"AccessKeyId": "…", "AccessKeySecret": "…"}` or `KEY=value` lines with the
/// environment variable names. Refused if group or others have any access.
pub fn load_key_file(path: &Path) -> Result<Credentials, CredentialError> {
    let read_err = |e: std::io::Error| CredentialError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialError::Insecure {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let malformed = |message: &str| CredentialError::Malformed {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    if text.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct KeyJson {
            access_key_id: String,
            access_key_secret: String,
            #[serde(default)]
            security_token: Option<String>,
        }
        let k: KeyJson = serde_json::from_str(&text)
            .map_err(|_| malformed("not valid JSON with AccessKeyId and AccessKeySecret"))?;
        return Ok(Credentials {
            access_key_id: k.access_key_id,
            access_key_secret: Secret::new(k.access_key_secret),
            security_token: k.security_token.filter(|s| !s.is_empty()).map(Secret::new),
        });
    }
    let mut id = None;
    let mut secret = None;
    let mut token = None;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| malformed("lines must be KEY=value"))?;
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim() {
            ENV_ID => id = Some(v),
            ENV_SECRET => secret = Some(Secret::new(v)),
            ENV_TOKEN => token = Some(Secret::new(v)),
            _ => {}
        }
    }
    Ok(Credentials {
        access_key_id: id.ok_or_else(|| malformed(&format!("{ENV_ID}= is missing")))?,
        access_key_secret: secret.ok_or_else(|| malformed(&format!("{ENV_SECRET}= is missing")))?,
        security_token: token,
    })
}

/// One profile of the aliyun CLI config (`~/.aliyun/config.json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CliProfile {
    pub name: String,
    pub mode: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub sts_token: String,
    pub ram_role_arn: String,
    pub ram_session_name: String,
    pub ram_role_name: String,
    pub expired_seconds: Option<u32>,
    pub sts_region: String,
    pub external_id: String,
}

impl CliProfile {
    /// The key of an AK or StsToken profile (RamRoleArn's base key too).
    pub fn static_credentials(&self) -> Result<Credentials, String> {
        if self.access_key_id.is_empty() || self.access_key_secret.is_empty() {
            return Err(format!("profile {:?} has no access key", self.name));
        }
        let token = (self.mode == "StsToken").then(|| self.sts_token.clone());
        if token.as_deref() == Some("") {
            return Err(format!(
                "profile {:?} (mode StsToken) has no sts_token",
                self.name
            ));
        }
        Ok(Credentials {
            access_key_id: self.access_key_id.clone(),
            access_key_secret: Secret::new(self.access_key_secret.clone()),
            security_token: token.map(Secret::new),
        })
    }
}

/// Reads profile `name` (or the file's `current` one) from an aliyun CLI config.
pub fn read_profile(path: &Path, name: Option<&str>) -> Result<CliProfile, CredentialError> {
    #[derive(Deserialize)]
    struct CliConfig {
        #[serde(default)]
        current: String,
        #[serde(default)]
        profiles: Vec<CliProfile>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| CredentialError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let cfg: CliConfig = serde_json::from_str(&text).map_err(|_| CredentialError::Malformed {
        path: path.to_owned(),
        message: "not an aliyun CLI config (JSON with \"profiles\")".into(),
    })?;
    let name = name.unwrap_or(cfg.current.as_str()).to_owned();
    cfg.profiles
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            CredentialError::Profile(format!("no profile named {name:?} in {}", path.display()))
        })
}

/// An AK-mode (or StsToken-mode) profile from the aliyun CLI config.
pub fn load_profile(path: &Path, name: &str) -> Result<Credentials, CredentialError> {
    let p = read_profile(path, Some(name))?;
    if !matches!(p.mode.as_str(), "AK" | "StsToken") {
        return Err(CredentialError::Profile(format!(
            "profile {name:?} uses mode {:?}; here only AK and StsToken (RamRoleArn and EcsRamRole work through the short-lived sources)",
            p.mode
        )));
    }
    p.static_credentials().map_err(CredentialError::Profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(source: CredentialSource, file: Option<PathBuf>) -> CredentialsConfig {
        let mut c = CredentialsConfig::new(source);
        c.file = file;
        c
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::new("LTAIid", "s3cr3t-value");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("LTAIid"));
    }

    #[test]
    fn env_source() {
        let env = |k: &str| match k {
            ENV_ID => Some("id".to_owned()),
            ENV_SECRET => Some("sec".to_owned()),
            _ => None,
        };
        let c = load(&cfg(CredentialSource::Env, None), &env).unwrap();
        assert_eq!(c.access_key_secret.expose(), "sec");
        let e = load(&cfg(CredentialSource::Env, None), &|_| None).unwrap_err();
        assert!(e.to_string().contains(ENV_ID));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_permissions_and_forms() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.json");
        std::fs::write(&p, r#"{"AccessKeyId":"id1","AccessKeySecret":"sec1"}"#).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_key_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("readable") && e.contains("chmod 600") && !e.contains("sec1"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_key_file(&p).unwrap().access_key_id, "id1");
        let q = dir.path().join("key.env");
        std::fs::write(&q, format!("{ENV_ID}=id2\n{ENV_SECRET}=sec2\n")).unwrap();
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            load_key_file(&q).unwrap().access_key_secret.expose(),
            "sec2"
        );
    }

    #[test]
    fn systemd_and_profile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("access_key_id"), "id3\n").unwrap();
        std::fs::write(dir.path().join("access_key_secret"), "sec3\n").unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone());
        let c = load(&cfg(CredentialSource::Systemd, None), &env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.access_key_secret.expose()),
            ("id3", "sec3")
        );

        let prof = dir.path().join("config.json");
        std::fs::write(&prof, r#"{"current":"default","profiles":[{"name":"default","mode":"AK","access_key_id":"id4","access_key_secret":"sec4","region_id":"cn-hangzhou"}]}"#).unwrap();
        assert_eq!(load_profile(&prof, "default").unwrap().access_key_id, "id4");
        assert!(load_profile(&prof, "other").is_err());
    }
}
