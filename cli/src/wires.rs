//! Thin clients of an agent's Wires API: list links, set a link down or up, flap it, watch
//! link events. They work against a local lab's agent or any node agent.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use ovswire_proto::v1::wires_client::WiresClient;
use ovswire_proto::v1::{
    AdminState, DirectionStats, Endpoint, Link, LinkEvent, LinkHistoryRequest, LinkRef,
    LinkStatsUpdate, ListLinksRequest, OperState, SetLinkStateRequest, WatchLinkStatsRequest,
    WatchLinksRequest,
};
use tonic::transport::Channel;

/// Where a node agent serves Wires when ovswire runs as a DaemonSet.
pub const NODE_SOCKET: &str = "/run/ovswire/wires.sock";

/// How to reach an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket.
    Socket(PathBuf),
    /// A TCP address (`--wires-listen` of the agent), `http://127.0.0.1:7070`, and the file
    /// holding the token it wants (its `--wires-token-file`).
    Server {
        /// The URL.
        url: String,
        /// The token file.
        token_file: Option<PathBuf>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(p) => write!(f, "{}", p.display()),
            Self::Server { url, .. } => f.write_str(url),
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call, when there is a token.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Bearer {
    /// The token in `path` (its content without surrounding whitespace).
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let mut value: tonic::metadata::MetadataValue<_> =
            format!("Bearer {}", text.trim()).parse().map_err(|_| {
                anyhow!(
                    "the token in {} has characters a header cannot carry",
                    path.display()
                )
            })?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

type Client = WiresClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// A connected Wires client.
#[derive(Debug, Clone)]
pub struct Wires {
    client: Client,
    target: Target,
}

impl Wires {
    /// Connects to `target`.
    pub async fn connect(target: &Target) -> Result<Self> {
        let (channel, bearer) = match target {
            Target::Socket(path) => (unix(path).await?, Bearer(None)),
            Target::Server { url, token_file } => {
                let bearer = match token_file {
                    Some(path) => Bearer::read(path)?,
                    None => Bearer(None),
                };
                let channel = tonic::transport::Endpoint::from_shared(url.clone())
                    .with_context(|| format!("{url:?} is not a URL like http://127.0.0.1:7070"))?
                    .connect_timeout(Duration::from_secs(5))
                    .connect()
                    .await
                    .with_context(|| format!("cannot reach the agent at {url}; is it running?"))?;
                (channel, bearer)
            }
        };
        Ok(Self {
            client: WiresClient::with_interceptor(channel, bearer),
            target: target.clone(),
        })
    }

    /// Every link of `lab` (every link the agent knows when `lab` is empty), sorted by name.
    pub async fn links(&self, lab: &str) -> Result<Vec<Link>> {
        self.list(lab, false).await
    }

    /// [`Self::links`] with each link's counters, read by the agent now.
    pub async fn links_with_stats(&self, lab: &str) -> Result<Vec<Link>> {
        self.list(lab, true).await
    }

    async fn list(&self, lab: &str, stats: bool) -> Result<Vec<Link>> {
        let mut links = self
            .client
            .clone()
            .list_links(ListLinksRequest {
                lab: lab.into(),
                stats,
            })
            .await
            .map_err(|s| self.error("list links", s))?
            .into_inner()
            .links;
        links.sort_by_key(link_name);
        Ok(links)
    }

    /// The link of `lab` that has endpoint `pod:ifname` at either end.
    pub async fn find(&self, lab: &str, endpoint: &str) -> Result<Link> {
        let (pod, ifname) = endpoint.split_once(':').ok_or_else(|| {
            anyhow!("{endpoint:?} is not an endpoint; write it as NODE:IFNAME, e.g. r1:eth1")
        })?;
        let links = self.links(lab).await?;
        let is = |e: &Option<Endpoint>| {
            e.as_ref()
                .is_some_and(|e| e.pod == pod && e.ifname == ifname)
        };
        let matching: Vec<_> = links
            .into_iter()
            .filter(|l| l.r#ref.as_ref().is_some_and(|r| is(&r.a) || is(&r.b)))
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one link")),
            0 => bail!(
                "no link has endpoint {endpoint}{}; `ovswire links` lists them",
                if lab.is_empty() {
                    String::new()
                } else {
                    format!(" in lab {lab}")
                }
            ),
            _ => bail!(
                "{endpoint} is an endpoint in several labs ({}); name one with --lab",
                matching
                    .iter()
                    .filter_map(|l| l.r#ref.as_ref().map(|r| r.lab.clone()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Sets the link with endpoint `endpoint` administratively up or down; the link after.
    pub async fn set(&self, lab: &str, endpoint: &str, up: bool) -> Result<Link> {
        let link = self.find(lab, endpoint).await?;
        let admin = if up { AdminState::Up } else { AdminState::Down };
        self.client
            .clone()
            .set_link_state(SetLinkStateRequest {
                r#ref: link.r#ref,
                admin: admin as i32,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error("set the link state", s))
    }

    /// Changes the impairments of the link with endpoint `endpoint`: `directions` (in the
    /// link's own a/b terms) get `imp`, the other direction keeps what it has; the link after.
    pub async fn impair(
        &self,
        lab: &str,
        endpoint: &str,
        directions: &[ovswire_core::stats::Direction],
        imp: ovswire_core::impair::Impairment,
    ) -> Result<Link> {
        let link = self.find(lab, endpoint).await?;
        let mut now = impairment_of(&link);
        for d in directions {
            *now.get_mut(*d) = imp;
        }
        self.client
            .clone()
            .set_link_impairment(ovswire_proto::v1::SetLinkImpairmentRequest {
                r#ref: link.r#ref,
                impairment: Some((&now).into()),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error("set the link's impairments", s))
    }

    /// The stream of link events of `lab` (all labs when empty), starting with one `initial`
    /// event per existing link; or, with `since`, with the events the agent remembers since
    /// then.
    pub async fn watch(
        &self,
        lab: &str,
        since: Option<SystemTime>,
    ) -> Result<tonic::Streaming<LinkEvent>> {
        let since_unix_ms = since.map_or(0, |t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_millis().max(1) as i64)
        });
        self.client
            .clone()
            .watch_links(WatchLinksRequest {
                lab: lab.into(),
                since_unix_ms,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error("watch links", s))
    }

    /// The events the agent remembers of link `name` (`r1:eth1--r2:eth1`) of `lab`, oldest
    /// first.
    pub async fn history(&self, lab: &str, name: &str) -> Result<Vec<LinkEvent>> {
        let (a, b) = name
            .split_once("--")
            .ok_or_else(|| anyhow!("{name:?} is not a link name like r1:eth1--r2:eth1"))?;
        let end = |e: &str| {
            e.split_once(':').map(|(pod, ifname)| Endpoint {
                pod: pod.into(),
                ifname: ifname.into(),
            })
        };
        let r = LinkRef {
            lab: lab.into(),
            a: end(a),
            b: end(b),
        };
        Ok(self
            .client
            .clone()
            .link_history(LinkHistoryRequest {
                lab: lab.into(),
                r#ref: Some(r),
                since_unix_ms: 0,
            })
            .await
            .map_err(|s| self.error("read the link's history", s))?
            .into_inner()
            .events)
    }

    /// Every link of `lab` with its counters and rates, every `interval`.
    pub async fn watch_stats(
        &self,
        lab: &str,
        interval: Duration,
    ) -> Result<tonic::Streaming<LinkStatsUpdate>> {
        self.client
            .clone()
            .watch_link_stats(WatchLinkStatsRequest {
                lab: lab.into(),
                interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error("watch link counters", s))
    }

    fn error(&self, what: &str, status: tonic::Status) -> anyhow::Error {
        match status.code() {
            tonic::Code::Unavailable => anyhow!(
                "cannot {what}: the agent at {} is unavailable ({}); is it running?",
                self.target,
                status.message()
            ),
            _ => anyhow!("cannot {what}: {}", status.message()),
        }
    }
}

async fn unix(path: &Path) -> Result<Channel> {
    if !path.exists() {
        bail!(
            "no agent socket at {}: bring a lab up with `ovswire lab up FILE`, or point at an \
             agent with --socket or --server",
            path.display()
        );
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        bail!(
            "the agent's socket {} is root's: run ovswire as root",
            path.display()
        );
    }
    ovswire_proto::unix_channel(path, Duration::from_secs(5))
        .await
        .with_context(|| format!("cannot connect to the agent at {}", path.display()))
}

/// `r1:eth1--r2:eth1`.
pub fn link_name(link: &Link) -> String {
    fn end(e: &Option<Endpoint>) -> (&str, &str) {
        e.as_ref()
            .map_or(("?", "?"), |e| (e.pod.as_str(), e.ifname.as_str()))
    }
    link.r#ref.as_ref().map_or_else(
        || "?".into(),
        |r| ovswire_core::link_name(end(&r.a), end(&r.b)),
    )
}

/// The lab of a link.
pub fn lab_of(link: &Link) -> &str {
    link.r#ref.as_ref().map_or("", |r: &LinkRef| r.lab.as_str())
}

/// The link's state in one word: `up`, `down` (administratively), `no-carrier` (wired but
/// down), `pending`, `error`.
pub fn state_word(link: &Link) -> &'static str {
    let admin_down = link.admin == AdminState::Down as i32;
    match OperState::try_from(link.oper).unwrap_or(OperState::Unspecified) {
        OperState::Up => "up",
        OperState::Down if admin_down => "down",
        OperState::Down => "no-carrier",
        OperState::Pending => "pending",
        OperState::Error => "error",
        OperState::Unspecified => "unknown",
    }
}

/// Whether the link is as its admin state asks: up and passing frames, or down on purpose.
pub fn settled(link: &Link) -> bool {
    let oper = OperState::try_from(link.oper).unwrap_or(OperState::Unspecified);
    if link.admin == AdminState::Down as i32 {
        oper == OperState::Down
    } else {
        oper == OperState::Up
    }
}

/// A link's impairments as the agent reports them (none when it reports none).
pub fn impairment_of(link: &Link) -> ovswire_core::impair::LinkImpairment {
    link.impairment
        .as_ref()
        .and_then(|i| ovswire_core::impair::LinkImpairment::try_from(i).ok())
        .unwrap_or_default()
}

/// A link's impairments for a table: `-` for none, `delay=20ms` when both directions have the
/// same, else `a->b: ...; b->a: ...`.
pub fn impairment_word(link: &Link) -> String {
    let imp = impairment_of(link);
    if imp.is_none() {
        "-".to_owned()
    } else {
        imp.to_string()
    }
}

/// An aligned text table of links.
pub fn table(links: &[Link]) -> String {
    let rows: Vec<[String; 6]> = links
        .iter()
        .map(|l| {
            [
                lab_of(l).to_owned(),
                link_name(l),
                l.mtu.to_string(),
                state_word(l).to_owned(),
                impairment_word(l),
                l.reason.clone(),
            ]
        })
        .collect();
    crate::table::aligned(
        ["LAB", "LINK", "MTU", "STATE", "IMPAIRMENT", "REASON"],
        &rows,
    )
}

/// The time of day (UTC, with milliseconds) of Unix milliseconds `ms`, or of now when it is 0:
/// `14:03:07.250`.
pub fn time_of_day(ms: i64) -> String {
    let t = if ms > 0 {
        Duration::from_millis(ms as u64)
    } else {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    };
    let s = t.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_millis()
    )
}

/// `1.5 Gbit/s`, `12 kbit/s`, `0 bit/s`.
pub fn bits_per_second(bps: f64) -> String {
    let (value, unit) = [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")]
        .into_iter()
        .find(|(scale, _)| bps >= *scale)
        .map_or((bps, "bit/s"), |(scale, unit)| (bps / scale, unit));
    if value >= 100.0 || unit == "bit/s" {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// An aligned table of links with their counters (and rates, when the agent computed them).
pub fn stats_table(links: &[Link]) -> String {
    let rows: Vec<[String; 9]> = links
        .iter()
        .map(|l| {
            let s = l.stats.clone().unwrap_or_default();
            let (ab, ba) = (s.a_to_b.unwrap_or_default(), s.b_to_a.unwrap_or_default());
            [
                link_name(l),
                state_word(l).to_owned(),
                ab.packets.to_string(),
                ab.bytes.to_string(),
                bits_per_second(ab.bits_per_second),
                ba.packets.to_string(),
                ba.bytes.to_string(),
                bits_per_second(ba.bits_per_second),
                format!("{} / {}", ab.drops + ba.drops, s.flaps),
            ]
        })
        .collect();
    crate::table::aligned(
        [
            "LINK",
            "STATE",
            "A->B PKTS",
            "A->B BYTES",
            "A->B RATE",
            "B->A PKTS",
            "B->A BYTES",
            "B->A RATE",
            "DROPS / FLAPS",
        ],
        &rows,
    )
}

/// A link as JSON for `--json` output.
pub fn json(link: &Link) -> serde_json::Value {
    let end = |e: &Option<Endpoint>| {
        e.as_ref()
            .map(|e| serde_json::json!({"node": e.pod, "ifname": e.ifname}))
    };
    let r = link.r#ref.clone().unwrap_or_default();
    let mut v = serde_json::json!({
        "lab": r.lab,
        "name": link_name(link),
        "a": end(&r.a),
        "b": end(&r.b),
        "mtu": link.mtu,
        "admin": if link.admin == AdminState::Down as i32 { "down" } else { "up" },
        "state": state_word(link),
        "reason": link.reason,
        "node_a": link.node_a,
        "node_b": link.node_b,
        "effective_mtu": link.effective_mtu,
        "tunnel_key": link.tunnel_key,
    });
    let imp = impairment_of(link);
    let direction = |i: &ovswire_core::impair::Impairment| {
        serde_json::Value::Object(
            i.fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                .collect(),
        )
    };
    v["impairment"] = serde_json::json!({
        "a_to_b": direction(&imp.a_to_b),
        "b_to_a": direction(&imp.b_to_a),
    });
    if let Some(s) = &link.stats {
        let direction = |d: &Option<DirectionStats>| {
            let d = d.unwrap_or_default();
            serde_json::json!({
                "packets": d.packets,
                "bytes": d.bytes,
                "drops": d.drops,
                "packets_per_second": d.packets_per_second,
                "bits_per_second": d.bits_per_second,
            })
        };
        v["stats"] = serde_json::json!({
            "node": s.node,
            "a_to_b": direction(&s.a_to_b),
            "b_to_a": direction(&s.b_to_a),
            "carrier_changes": s.carrier_changes,
            "flaps": s.flaps,
            "last_change_unix_ms": s.last_change_unix_ms,
            "last_reason": s.last_reason,
        });
    }
    v
}

/// A link `a--b` of lab `lab` in the given states, for tests.
#[cfg(test)]
pub(crate) fn test_link(a: &str, b: &str, admin: AdminState, oper: OperState) -> Link {
    let end = |s: &str| {
        let (pod, ifname) = s.split_once(':').unwrap_or((s, ""));
        Some(Endpoint {
            pod: pod.into(),
            ifname: ifname.into(),
        })
    };
    Link {
        r#ref: Some(LinkRef {
            lab: "lab".into(),
            a: end(a),
            b: end(b),
        }),
        admin: admin as i32,
        oper: oper as i32,
        reason: String::new(),
        mtu: 1500,
        node_a: "n".into(),
        node_b: "n".into(),
        effective_mtu: 1500,
        tunnel_key: 0,
        impairment: None,
        stats: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: &str, b: &str, admin: AdminState, oper: OperState) -> Link {
        test_link(a, b, admin, oper)
    }

    #[test]
    fn states_read_as_words_and_settle() {
        let up = link("r1:eth1", "r2:eth1", AdminState::Up, OperState::Up);
        let down = link("r1:eth2", "r3:eth1", AdminState::Down, OperState::Down);
        let lost = link("r1:eth3", "r4:eth1", AdminState::Up, OperState::Down);
        let pending = link("r1:eth4", "r5:eth1", AdminState::Up, OperState::Pending);
        assert_eq!(
            [&up, &down, &lost, &pending].map(state_word),
            ["up", "down", "no-carrier", "pending"]
        );
        assert!(settled(&up) && settled(&down));
        assert!(!settled(&lost) && !settled(&pending));
        let t = table(&[up, down]);
        assert!(t.starts_with("LAB  LINK"));
        assert!(t.contains("lab  r1:eth1--r2:eth1  1500  up     -"), "{t}");
        assert!(t.contains("r1:eth2--r3:eth1  1500  down"));
        let mut slow = link("r1:eth1", "r2:eth1", AdminState::Up, OperState::Up);
        let imp: ovswire_core::impair::LinkImpairment =
            "a->b: delay=20ms; b->a: none".parse().unwrap();
        slow.impairment = Some((&imp).into());
        assert!(table(&[slow.clone()]).contains("up     a->b: delay=20ms; b->a: none"));
        assert_eq!(json(&slow)["impairment"]["a_to_b"]["delay"], "20ms");
        assert_eq!(json(&slow)["impairment"]["b_to_a"], serde_json::json!({}));
    }
}
