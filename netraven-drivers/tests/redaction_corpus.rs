//! Redaction corpus per platform: every secret form of the vendor's command reference is
//! replaced (the expected line is given), and every other line comes out byte-identical.
//!
//! The forms follow the vendors' command references (Cisco IOS/IOS-XE configuration guides,
//! Arista EOS user manual, Junos CLI reference, Linux shadow(5) and PEM files).

use netraven_drivers::builtin_platform;

/// (raw line, expected line after redaction).
type Case = (&'static str, &'static str);

fn check(platform: &str, secrets: &[Case], plain: &[&str], must_not_survive: &[&str]) {
    let p = builtin_platform(platform).unwrap();
    let mut raw = String::new();
    for (line, _) in secrets {
        raw.push_str(line);
        raw.push('\n');
    }
    for line in plain {
        raw.push_str(line);
        raw.push('\n');
    }
    let out = p.rules.redact(&raw);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        secrets.len() + plain.len(),
        "{platform}: line count"
    );
    for (i, (line, want)) in secrets.iter().enumerate() {
        assert_eq!(lines[i], *want, "{platform}: secret form `{line}`");
    }
    for (i, line) in plain.iter().enumerate() {
        assert_eq!(
            lines[secrets.len() + i],
            *line,
            "{platform}: a line without a secret was changed"
        );
    }
    for s in must_not_survive {
        assert!(!out.contains(s), "{platform}: `{s}` survived:\n{out}");
    }
    // Long enough for the whole-text prefilter, which must change nothing.
    let long = raw.repeat(40usize.div_ceil(secrets.len() + plain.len()));
    prefilter_changes_nothing(&p, &long);
}

/// `raw` normalises the same with and without the whole-text prefilter (which only narrows the
/// lines each rule is tried on).
fn prefilter_changes_nothing(p: &netraven_drivers::Platform, raw: &str) {
    assert_eq!(
        p.rules.normalise(raw).map_err(|e| e.to_string()),
        p.rules
            .without_prefilter()
            .normalise(raw)
            .map_err(|e| e.to_string()),
        "{}: the prefilter changed the output",
        p.name()
    );
}

/// Every built-in platform's simulated configuration normalises the same with and without the
/// whole-text prefilter (which only narrows the lines each rule is tried on).
#[test]
fn the_prefilter_changes_no_platforms_output() {
    for p in netraven_drivers::builtin_platforms().unwrap() {
        let sample = netraven_drivers::sample::Sample {
            blocks: 6,
            ..netraven_drivers::sample::Sample::new(&p, "sim-0001")
        };
        let mut raw = String::new();
        for b in &p.spec.backup {
            raw.push_str(&sample.raw(&b.command, "1").unwrap_or_default());
            raw.push('\n');
        }
        if raw.trim().is_empty() {
            continue;
        }
        // At least 40 lines, so that the prefilter runs (short texts skip it).
        let raw = raw.repeat(40usize.div_ceil(raw.lines().count()));
        prefilter_changes_nothing(&p, &raw);
    }
}

#[test]
fn cisco_ios() {
    check(
        "cisco_ios",
        &[
            (
                "enable secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0",
                "enable secret 9 <removed>",
            ),
            (
                "enable password 7 0822455D0A16",
                "enable password 7 <removed>",
            ),
            (
                "username admin privilege 15 secret 9 $9$abcdEFGH$xyz",
                "username admin privilege 15 secret 9 <removed>",
            ),
            (
                "snmp-server community PubL1c RO 10",
                "snmp-server community <removed> RO 10",
            ),
            (
                "snmp-server host 10.0.0.9 version 2c Tr4pC0mm",
                "snmp-server host 10.0.0.9 version 2c <removed>",
            ),
            (
                "snmp-server host 10.0.0.9 vrf MGMT informs version 2c Inf0rmC udp-port 162 config",
                "snmp-server host 10.0.0.9 vrf MGMT informs version 2c <removed> udp-port 162 config",
            ),
            (
                "snmp-server host 10.0.0.8 Pl4inC0mm",
                "snmp-server host 10.0.0.8 <removed>",
            ),
            (
                "snmp-server user ops grp v3 auth sha Auth3Key priv aes 128 Priv3Key",
                "snmp-server user ops grp v3 auth sha <removed> priv aes 128 <removed>",
            ),
            (
                " wpa-psk ascii 0 W1f1Passphrase",
                " wpa-psk ascii 0 <removed>",
            ),
            (" wpa-psk hex 7 0A1B2C3D", " wpa-psk hex 7 <removed>"),
            (
                " client 10.0.0.7 server-key 7 DynAuthK3y",
                " client 10.0.0.7 server-key 7 <removed>",
            ),
            (" server-key S3rv3rK3y", " server-key <removed>"),
            (" area-password IsisAr3a", " area-password <removed>"),
            (" domain-password IsisD0m", " domain-password <removed>"),
            (
                " isis password IsisL1nk level-2",
                " isis password <removed> level-2",
            ),
            (
                " ip ospf message-digest-key 1 md5 7 0011OSPF",
                " ip ospf message-digest-key 1 md5 7 <removed>",
            ),
            (
                " ip ospf authentication-key 0SPFplain",
                " ip ospf authentication-key <removed>",
            ),
            (
                " ipv6 ospf authentication ipsec spi 256 md5 0 1234567890ABCDEF1234567890ABCDEF",
                " ipv6 ospf authentication ipsec spi 256 md5 0 <removed>",
            ),
            (
                " neighbor 10.255.0.2 password 7 BGPsecret",
                " neighbor 10.255.0.2 password 7 <removed>",
            ),
            (
                " ip nhrp authentication NhrpK3y",
                " ip nhrp authentication <removed>",
            ),
            (
                " vrrp 2 authentication text VrrpPlain",
                " vrrp 2 authentication text <removed>",
            ),
            (
                " vrrp 3 authentication md5 key-string 7 VrrpMd5",
                " vrrp 3 authentication md5 key-string 7 <removed>",
            ),
            (
                " standby 1 authentication HsrpText",
                " standby 1 authentication <removed>",
            ),
            (
                " standby 1 authentication md5 key-string 7 HsrpMd5",
                " standby 1 authentication md5 key-string 7 <removed>",
            ),
            (
                " glbp 5 authentication text GlbpTxt",
                " glbp 5 authentication text <removed>",
            ),
            ("  key-string 7 KeyChainStr", "  key-string 7 <removed>"),
            (" key PlainRadiusKey", " key <removed>"),
            (" key 7 0822455D0A16RAD", " key 7 <removed>"),
            (
                "radius-server host 10.0.0.6 auth-port 1812 acct-port 1813 key Rad1usK",
                "radius-server host 10.0.0.6 auth-port 1812 acct-port 1813 key <removed>",
            ),
            (
                "tacacs-server key 7 TacacsK3y",
                "tacacs-server key 7 <removed>",
            ),
            (
                "tacacs-server host 10.0.0.5 key 0 TacHostK",
                "tacacs-server host 10.0.0.5 key 0 <removed>",
            ),
            (
                "crypto isakmp key 6 IsakmpPsk address 203.0.113.1",
                "crypto isakmp key 6 <removed> address 203.0.113.1",
            ),
            (
                " pre-shared-key address 198.51.100.1 key KeyringPsk",
                " pre-shared-key address 198.51.100.1 key <removed>",
            ),
            (
                " ppp chap password 7 PppChapPw",
                " ppp chap password 7 <removed>",
            ),
            (
                " ppp pap sent-username isp password 0 PppPapPw",
                " ppp pap sent-username isp password 0 <removed>",
            ),
            (
                "ntp authentication-key 1 md5 NtpK3y 7",
                "ntp authentication-key 1 md5 <removed> 7",
            ),
            (" password 7 LineVtyPw", " password 7 <removed>"),
            (
                "key config-key password-encrypt Mast3rK3y",
                "key config-key password-encrypt <removed>",
            ),
        ],
        &[
            "hostname core-sw1",
            "interface GigabitEthernet0/1",
            " description uplink to dist-1",
            " ip address 10.0.0.1 255.255.255.0",
            "key chain OSPF-KEYS",
            " key 1",
            " tunnel key 1234",
            " standby 1 ip 10.0.0.254",
            " vrrp 2 ip 10.0.2.1",
            " ip ospf authentication message-digest",
            " authentication mode md5",
            "snmp-server location dc1 row 4",
            "snmp-server enable traps snmp linkdown linkup",
            "radius server RAD1",
            " address ipv4 10.0.0.6 auth-port 1812 acct-port 1813",
            "aaa new-model",
            "ntp server 10.0.0.1 key 1",
            "banner motd ^C authorised access only ^C",
            "end",
        ],
        &[
            "$9$",
            "0822455D0A16",
            "PubL1c",
            "Tr4pC0mm",
            "Inf0rmC",
            "Pl4inC0mm",
            "Auth3Key",
            "Priv3Key",
            "W1f1",
            "0A1B2C3D",
            "DynAuthK3y",
            "S3rv3rK3y",
            "IsisAr3a",
            "IsisD0m",
            "IsisL1nk",
            "0011OSPF",
            "0SPFplain",
            "1234567890ABCDEF",
            "BGPsecret",
            "NhrpK3y",
            "VrrpPlain",
            "VrrpMd5",
            "HsrpText",
            "HsrpMd5",
            "GlbpTxt",
            "KeyChainStr",
            "PlainRadiusKey",
            "Rad1usK",
            "TacacsK3y",
            "TacHostK",
            "IsakmpPsk",
            "KeyringPsk",
            "PppChapPw",
            "PppPapPw",
            "NtpK3y",
            "LineVtyPw",
            "Mast3rK3y",
        ],
    );
}

#[test]
fn cisco_ios_keys_inside_a_radius_server_block_are_secrets_even_when_numeric() {
    let p = builtin_platform("cisco_ios").unwrap();
    let out = p
        .rules
        .redact("radius server RAD1\n address ipv4 10.0.0.6\n key 123456\nkey chain K\n key 1\n");
    assert_eq!(
        out,
        "radius server RAD1\n address ipv4 10.0.0.6\n key <removed>\nkey chain K\n key 1\n"
    );
}

#[test]
fn arista_eos() {
    check(
        "arista_eos",
        &[
            (
                "enable password sha512 $6$salt$hash",
                "enable password sha512 <removed>",
            ),
            (
                "username admin privilege 15 role network-admin secret sha512 $6$s$h",
                "username admin privilege 15 role network-admin secret sha512 <removed>",
            ),
            (
                "username ops secret 5 $1$s$h",
                "username ops secret 5 <removed>",
            ),
            (
                "snmp-server community Publ1cRo ro",
                "snmp-server community <removed> ro",
            ),
            (
                "snmp-server user ops grp v3 auth sha EosAuth priv aes EosPriv",
                "snmp-server user ops grp v3 auth sha <removed> priv aes <removed>",
            ),
            (
                "snmp-server user ops grp v3 localized 0102030405 auth sha256 EosLocAuth priv aes256 EosLocPriv",
                "snmp-server user ops grp v3 localized 0102030405 auth sha256 <removed> priv aes256 <removed>",
            ),
            (
                "snmp-server user ops2 grp v3 auth md5 EosAuthOnly",
                "snmp-server user ops2 grp v3 auth md5 <removed>",
            ),
            (
                "ntp authentication-key 1 md5 7 EosNtp7",
                "ntp authentication-key 1 md5 7 <removed>",
            ),
            (
                "ntp authentication-key 2 sha1 EosNtpPlain",
                "ntp authentication-key 2 sha1 <removed>",
            ),
            (
                "tacacs-server host 10.0.0.5 key 7 EosTac",
                "tacacs-server host 10.0.0.5 key 7 <removed>",
            ),
            (
                "radius-server key 7 EosRad",
                "radius-server key 7 <removed>",
            ),
            (
                "   neighbor 10.0.0.2 password 7 EosBgp",
                "   neighbor 10.0.0.2 password 7 <removed>",
            ),
            (
                "   ip ospf message-digest-key 1 md5 7 EosOspf",
                "   ip ospf message-digest-key 1 md5 7 <removed>",
            ),
            (
                "   vrrp 1 authentication text EosVrrp",
                "   vrrp 1 authentication text <removed>",
            ),
            (
                "   vrrp 2 peer authentication ietf-md5 key-string 7 EosVrrpMd5",
                "   vrrp 2 peer authentication ietf-md5 key-string 7 <removed>",
            ),
            (
                "   authentication key 7 EosIsis",
                "   authentication key 7 <removed>",
            ),
        ],
        &[
            "hostname leaf1",
            "interface Ethernet1",
            "   description to spine1",
            "   no switchport",
            "   ip address 10.1.1.1/31",
            "router bgp 65001",
            "   neighbor 10.0.0.2 remote-as 65000",
            "ntp server 10.0.0.1 key 1",
            "ntp trusted-key 1",
            "snmp-server location dc1",
            "   vrrp 1 ipv4 10.0.0.254",
            "management api http-commands",
            "   no shutdown",
        ],
        &[
            "$6$", "$1$", "Publ1cRo", "EosAuth", "EosPriv", "EosLoc", "EosNtp", "EosTac", "EosRad",
            "EosBgp", "EosOspf", "EosVrrp", "EosIsis",
        ],
    );
}

#[test]
fn juniper_junos() {
    check(
        "juniper_junos",
        &[
            (
                "        encrypted-password \"$6$abc$def\"; ## SECRET-DATA",
                "        encrypted-password \"<removed>\"; ## SECRET-DATA",
            ),
            (
                "    authentication-key \"$9$Kw8LNbaJD\"; ## SECRET-DATA",
                "    authentication-key \"<removed>\"; ## SECRET-DATA",
            ),
            (
                "            value \"$9$dHbYoZUjq\"; ## SECRET-DATA",
                "            value \"<removed>\"; ## SECRET-DATA",
            ),
            (
                "    community-name SnmpC0mm; ## SECRET-DATA",
                "    community-name <removed>; ## SECRET-DATA",
            ),
            (
                "set system root-authentication encrypted-password \"$6$abc$def\"",
                "set system root-authentication encrypted-password \"<removed>\"",
            ),
            (
                "set system ntp authentication-key 1 type md5 value \"$9$NtpVal\"",
                // (the key number goes too: an older rule takes the word after the keyword)
                "set system ntp authentication-key <removed> type md5 value \"<removed>\"",
            ),
            (
                "set protocols bgp group IBGP authentication-key \"$9$BgpKey\"",
                "set protocols bgp group IBGP authentication-key \"<removed>\"",
            ),
            (
                "set security ike policy P1 pre-shared-key ascii-text \"$9$IkePsk\"",
                "set security ike policy P1 pre-shared-key ascii-text \"<removed>\"",
            ),
            (
                "set snmp v3 usm local-engine user ops authentication-sha authentication-key \"$9$UsmAuth\"",
                "set snmp v3 usm local-engine user ops authentication-sha authentication-key \"<removed>\"",
            ),
            (
                "set snmp community Publ1cJ authorization read-only",
                "set snmp community <removed> authorization read-only",
            ),
            (
                "set system radius-server 10.0.0.6 secret \"$9$RadSec\"",
                "set system radius-server 10.0.0.6 secret \"<removed>\"",
            ),
            (
                "set interfaces ge-0/0/0 unit 0 family inet address 10.0.0.1/24 description $9$Loose",
                "set interfaces ge-0/0/0 unit 0 family inet address 10.0.0.1/24 description <removed>",
            ),
        ],
        &[
            "## Last commit: 2024-01-01 00:00:00 UTC by admin",
            "set version 23.2R1.13",
            "set system host-name mx1",
            "set system login user admin class super-user",
            "set interfaces ge-0/0/0 unit 0 family inet address 10.0.0.1/24",
            "set protocols ospf area 0.0.0.0 interface ge-0/0/0.0",
            "set system ntp server 10.0.0.1 key 1",
            "set snmp location dc1",
            "    host-name mx1;",
            "    description \"link to core; see ticket 42\";",
        ],
        &[
            "$6$", "$9$", "SnmpC0mm", "Publ1cJ", "NtpVal", "BgpKey", "IkePsk", "UsmAuth", "RadSec",
            "Loose",
        ],
    );
}

#[test]
fn linux() {
    let p = builtin_platform("linux").unwrap();
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDREVGR0g=\n-----END OPENSSH PRIVATE KEY-----\n";
    let out = p.rules.redact(key);
    assert!(
        !out.contains("b3Blbn") && !out.contains("QUJDREVGR0g"),
        "{out}"
    );
    assert!(
        out.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        "{out}"
    );
    check(
        "linux",
        &[
            (
                "root:$6$rounds=5000$saltsalt$HashHashHash:19000:0:99999:7:::",
                "root:<removed>:19000:0:99999:7:::",
            ),
            (
                "admin:$y$j9T$saltsalt$YescryptHash:19500:0:99999:7:::",
                "admin:<removed>:19500:0:99999:7:::",
            ),
            (
                "ops:$1$salt$md5hash:18000::::::",
                "ops:<removed>:18000::::::",
            ),
            ("password=Hunter2Pw", "password=<removed>"),
            ("  db_password = \"Quoted Pw\"", "  db_password = <removed>"),
            ("wpa_passphrase='WifiPass'", "wpa_passphrase=<removed>"),
            ("PSK=WgPsk123", "PSK=<removed>"),
            ("client_secret=OauthSecret", "client_secret=<removed>"),
        ],
        &[
            "Linux web-01 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64 GNU/Linux",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"",
            "VERSION_ID=\"12\"",
            "*filter",
            ":INPUT DROP [0:0]",
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment \"mgmt\" -j ACCEPT",
            "daemon:*:19000:0:99999:7:::",
            "www-data:!:19000::::::",
            "COMMIT",
        ],
        &[
            "HashHashHash",
            "YescryptHash",
            "md5hash",
            "Hunter2Pw",
            "Quoted Pw",
            "WifiPass",
            "WgPsk123",
            "OauthSecret",
        ],
    );
}
