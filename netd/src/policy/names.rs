//! Names and small values whose constructors check them: once a value exists it is valid.

use std::fmt;

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:expr, $pattern:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s)?;
                Ok(Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl $name {
            /// The checked string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string())
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "pattern": $pattern })
            }
        }
    };
}

fn check_label(s: &str, max: usize, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(format!("invalid {what} {s:?}: use 1-{max} characters a-z, 0-9 or '-', starting with a letter"))
    }
}

string_newtype!(
    /// Segment or closed-group name. At most 10 characters so that `kzv-<name>` and
    /// `kzw-<name>` fit the kernel's 15-byte interface names.
    SegmentName,
    |s| check_label(s, 10, "segment name"),
    "^[a-z][a-z0-9-]{0,9}$"
);
string_newtype!(
    /// Site name, unique in the policy.
    SiteName,
    |s| check_label(s, 63, "site name"),
    "^[a-z][a-z0-9-]{0,62}$"
);
string_newtype!(
    /// Mesh name.
    MeshName,
    |s| check_label(s, 63, "mesh name"),
    "^[a-z][a-z0-9-]{0,62}$"
);
string_newtype!(
    /// LAN interface of a segment: `eth1`, or `eth1.20` for VLAN 20 on `eth1`.
    LanInterface,
    check_lan,
    "^[A-Za-z0-9_-]{1,15}(\\.[1-9][0-9]{0,3})?$"
);
string_newtype!(
    /// A WireGuard public key: 32 bytes in standard base64.
    PublicKey,
    check_key,
    "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
);

fn check_iface(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("invalid interface name {s:?}: 1-15 characters A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

fn check_lan(s: &str) -> Result<(), String> {
    if s.len() > 15 {
        return Err(format!("invalid interface name {s:?}: longer than 15 characters"));
    }
    let parent = s.split_once('.').map_or(s, |(p, _)| p);
    // netd owns these names: it would enslave, rule or delete such a LAN as its own device.
    if parent.starts_with("kzv-") || parent.starts_with("kzw-") {
        return Err(format!(
            "interface {s:?} is named like netd's own devices (kzv-* VRFs, kzw-* WireGuard); use the LAN's own name"
        ));
    }
    match s.split_once('.') {
        None => check_iface(s),
        Some((parent, vlan)) => {
            check_iface(parent)?;
            // Only the canonical spelling: `eth2.010` and `eth2.+10` would be VLAN 10 twice over.
            let canonical =
                !vlan.is_empty() && !vlan.starts_with('0') && vlan.bytes().all(|b| b.is_ascii_digit());
            match vlan.parse::<u16>() {
                Ok(id) if canonical && (1..=4094).contains(&id) => Ok(()),
                _ => Err(format!("invalid VLAN id in {s:?}: expected 1-4094 without leading zeros or sign")),
            }
        }
    }
}

fn check_key(s: &str) -> Result<(), String> {
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(b) if b.len() == 32 => Ok(()),
        _ => Err(format!("invalid WireGuard public key {s:?}: expected 32 bytes in base64")),
    }
}

impl LanInterface {
    /// `(parent, vlan id)` when this is a VLAN interface.
    pub fn vlan(&self) -> Option<(&str, u16)> {
        let (p, v) = self.0.split_once('.')?;
        Some((p, v.parse().ok()?))
    }
}

impl PublicKey {
    /// Raw key bytes.
    pub fn bytes(&self) -> [u8; 32] {
        let v = base64::engine::general_purpose::STANDARD.decode(&self.0).expect("checked at construction");
        let mut out = [0u8; 32];
        out.copy_from_slice(&v);
        out
    }
    /// From raw bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        Self(base64::engine::general_purpose::STANDARD.encode(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!("reference".parse::<SegmentName>().is_ok());
        assert!("conference1".parse::<SegmentName>().is_err());
        assert!("Ref".parse::<SegmentName>().is_err());
        assert_eq!("eth1.20".parse::<LanInterface>().unwrap().vlan(), Some(("eth1", 20)));
        assert!("eth1.5000".parse::<LanInterface>().is_err());
        for bad in ["eth2.010", "eth2.+7", "eth2.0", "eth2.", "kzw-reference", "kzv-upload", "kzw-x.10"] {
            assert!(bad.parse::<LanInterface>().is_err(), "{bad}");
        }
        assert!("kz-lan.7".parse::<LanInterface>().is_ok());
        assert!("abc".parse::<PublicKey>().is_err());
        let k = PublicKey::from_bytes(&[7; 32]);
        assert_eq!(k.bytes(), [7; 32]);
    }
}
