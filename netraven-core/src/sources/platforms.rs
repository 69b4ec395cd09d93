//! Platform names of other tools mapped onto NetRaven's (netmiko `device_type` names): Oxidized
//! models, RANCID device types, Ansible `ansible_network_os` values, NAPALM drivers and NetBox
//! platform slugs. A [`PlatformMap`] starts from the built-in table and takes overrides.

use std::collections::BTreeMap;

/// (NetRaven platform, Oxidized model, other names that mean the same platform). Names are
/// compared lower-case; the first column maps to itself.
const TABLE: &[(&str, &str, &[&str])] = &[
    (
        "cisco_ios",
        "ios",
        &["cisco", "ios", "iosxe", "ios-xe", "cisco_xe", "cisco-ios"],
    ),
    (
        "cisco_xr",
        "iosxr",
        &["iosxr", "ios-xr", "cisco-xr", "cisco_iosxr"],
    ),
    (
        "cisco_nxos",
        "nxos",
        &["nxos", "cisco-nx", "nx-os", "cisco_nx"],
    ),
    ("cisco_asa", "asa", &["asa", "cisco-asa"]),
    ("cisco_wlc", "aireos", &["aireos", "cisco-wlc"]),
    ("cisco_s300", "ciscosmb", &["ciscosmb", "cisco-smb"]),
    ("cisco_ftd", "ftd", &["ftd"]),
    ("arista_eos", "eos", &["eos", "arista"]),
    (
        "juniper_junos",
        "junos",
        &["junos", "juniper", "junipernetworks"],
    ),
    ("juniper_screenos", "screenos", &["screenos", "netscreen"]),
    (
        "hp_procurve",
        "procurve",
        &["procurve", "hp", "aruba_procurve"],
    ),
    ("hp_comware", "comware", &["comware", "h3c"]),
    ("aruba_os", "aosw", &["aosw", "arubaos"]),
    ("aruba_aoscx", "aoscx", &["aoscx", "arubanetworks"]),
    ("huawei", "vrp", &["vrp", "huawei_vrp"]),
    ("fortinet", "fortios", &["fortios", "fortigate", "fortinet"]),
    ("paloalto_panos", "panos", &["panos", "paloalto"]),
    ("mikrotik_routeros", "routeros", &["routeros", "mikrotik"]),
    ("vyos", "vyos", &["vyatta"]),
    ("nokia_sros", "sros", &["sros", "timos", "nokia"]),
    ("extreme_exos", "xos", &["xos", "exos", "extreme"]),
    ("extreme_vsp", "voss", &["voss", "vsp"]),
    ("dell_os10", "os10", &["os10", "dellos10"]),
    ("dell_os9", "ftos", &["ftos", "dellos9", "force10"]),
    ("dell_os6", "powerconnect", &["powerconnect", "dellos6"]),
    ("f5_tmsh", "tmos", &["tmos", "f5", "bigip"]),
    ("cumulus_linux", "cumulus", &["cumulus", "nvue"]),
    ("linux", "linuxgeneric", &["linuxgeneric"]),
    ("ubiquiti_edgerouter", "edgeos", &["edgeos", "edgerouter"]),
    ("ubiquiti_edgeswitch", "edgeswitch", &["edgeswitch"]),
    ("checkpoint_gaia", "gaiaos", &["gaiaos", "gaia"]),
    ("opnsense", "opnsense", &[]),
    ("pfsense", "pfsense", &[]),
    (
        "ruckus_fastiron",
        "ironware",
        &["ironware", "fastiron", "foundry"],
    ),
    ("allied_telesis_awplus", "awplus", &["awplus"]),
    ("ciena_saos", "saos", &["saos"]),
    ("zyxel_os", "zynos", &["zynos", "zyxel"]),
    ("sophos_sfos", "sfos", &["sfos"]),
    (
        "watchguard_fireware",
        "firewareos",
        &["firewareos", "fireware"],
    ),
    ("opengear", "opengear", &[]),
    ("ericsson_ipos", "ipos", &["ipos"]),
    ("dlink_ds", "dlink", &["dlink"]),
    ("huawei_smartax", "smartax", &["smartax"]),
];

/// Maps platform names of other tools onto NetRaven platforms.
///
/// ```
/// use netraven_core::sources::platforms::PlatformMap;
/// let mut map = PlatformMap::default();
/// assert_eq!(map.resolve("cisco.ios.ios"), "cisco_ios");
/// assert_eq!(map.resolve("junos"), "juniper_junos");
/// map.insert("core-router", "cisco_xr");
/// assert_eq!(map.resolve("Core-Router"), "cisco_xr");
/// assert_eq!(map.resolve("something_else"), "something_else");
/// ```
#[derive(Debug, Clone, Default)]
pub struct PlatformMap {
    overrides: BTreeMap<String, String>,
}

impl PlatformMap {
    /// Adds (or replaces) a mapping from a foreign name to a NetRaven platform; overrides win
    /// over the built-in table.
    pub fn insert(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.overrides
            .insert(from.into().to_ascii_lowercase(), to.into());
    }

    /// Parses `from=to` pairs separated by commas (the CLI's `--platform-map`).
    pub fn parse_pairs(&mut self, pairs: &str) -> crate::Result<()> {
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = pair.split_once('=').ok_or_else(|| {
                crate::Error::invalid(format!("platform mapping '{pair}' is not from=to"))
            })?;
            self.insert(from.trim(), to.trim());
        }
        Ok(())
    }

    /// The NetRaven platform for a foreign name: an override, the built-in table (Ansible
    /// collection names like `cisco.ios.ios` are read by their last part), or the name itself
    /// lower-cased.
    pub fn resolve(&self, name: &str) -> String {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(to) = self.overrides.get(&lower) {
            return to.clone();
        }
        let short = lower.rsplit('.').next().unwrap_or(&lower);
        for candidate in [lower.as_str(), short] {
            if let Some(to) = self.overrides.get(candidate) {
                return to.clone();
            }
            for (ours, model, aliases) in TABLE {
                if *ours == candidate || *model == candidate || aliases.contains(&candidate) {
                    return (*ours).to_string();
                }
            }
        }
        lower
    }
}

/// The Oxidized model name of a NetRaven platform (what Oxidized's API answers as `model`), or
/// the platform itself when Oxidized has no such model.
pub fn oxidized_model(platform: &str) -> &str {
    TABLE
        .iter()
        .find(|(ours, ..)| *ours == platform)
        .map(|(_, model, _)| *model)
        .unwrap_or(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_round_trips_through_its_oxidized_model() {
        let map = PlatformMap::default();
        for (ours, model, aliases) in TABLE {
            assert_eq!(map.resolve(model), *ours, "{model}");
            assert_eq!(oxidized_model(ours), *model);
            for a in *aliases {
                assert_eq!(map.resolve(a), *ours, "{a}");
            }
        }
        assert_eq!(oxidized_model("acme_os"), "acme_os");
    }

    #[test]
    fn pairs_parse_and_bad_pairs_fail() {
        let mut map = PlatformMap::default();
        map.parse_pairs("edge=juniper_junos, ios=cisco_xr").unwrap();
        assert_eq!(map.resolve("EDGE"), "juniper_junos");
        assert_eq!(map.resolve("ios"), "cisco_xr");
        assert!(map.parse_pairs("nonsense").is_err());
    }
}
