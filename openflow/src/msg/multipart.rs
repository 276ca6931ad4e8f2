//! MULTIPART requests and replies (desc, flow, aggregate, table, port stats, port desc) and
//! the [`Reassembler`] that joins `OFPMPF_REPLY_MORE` parts.

use std::collections::HashMap;

use super::port::Port;
use crate::instruction::Instruction;
use crate::oxm::Match;
use crate::types::{OFPMPF_REPLY_MORE, group::OFPG_ANY, port::OFPP_ANY, table::OFPTT_ALL};
use crate::wire::{
    check_len, get_str, get_u16, get_u32, get_u64, put_str, put_u16, put_u32, put_u64,
};
use crate::{Error, Result};

mod field {
    use std::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const FLAGS: usize = 2;
    pub(super) const BODY: usize = 8;

    pub(super) const REQ_TABLE_ID: usize = 0;
    pub(super) const REQ_OUT_PORT: usize = 4;
    pub(super) const REQ_OUT_GROUP: usize = 8;
    pub(super) const REQ_COOKIE: usize = 16;
    pub(super) const REQ_COOKIE_MASK: usize = 24;
    pub(super) const REQ_MATCH: usize = 32;

    pub(super) const PORT_STATS_REQ_LEN: usize = 8;

    pub(super) const MFR_DESC: Range<usize> = 0..256;
    pub(super) const HW_DESC: Range<usize> = 256..512;
    pub(super) const SW_DESC: Range<usize> = 512..768;
    pub(super) const SERIAL_NUM: Range<usize> = 768..800;
    pub(super) const DP_DESC: Range<usize> = 800..1056;
    pub(super) const DESC_LEN: usize = 1056;

    pub(super) const FS_LENGTH: usize = 0;
    pub(super) const FS_TABLE_ID: usize = 2;
    pub(super) const FS_DURATION_SEC: usize = 4;
    pub(super) const FS_DURATION_NSEC: usize = 8;
    pub(super) const FS_PRIORITY: usize = 12;
    pub(super) const FS_IDLE_TIMEOUT: usize = 14;
    pub(super) const FS_HARD_TIMEOUT: usize = 16;
    pub(super) const FS_FLAGS: usize = 18;
    pub(super) const FS_COOKIE: usize = 24;
    pub(super) const FS_PACKET_COUNT: usize = 32;
    pub(super) const FS_BYTE_COUNT: usize = 40;
    pub(super) const FS_MATCH: usize = 48;

    pub(super) const AGG_PACKET_COUNT: usize = 0;
    pub(super) const AGG_BYTE_COUNT: usize = 8;
    pub(super) const AGG_FLOW_COUNT: usize = 16;
    pub(super) const AGG_LEN: usize = 24;

    pub(super) const TS_TABLE_ID: usize = 0;
    pub(super) const TS_ACTIVE_COUNT: usize = 4;
    pub(super) const TS_LOOKUP_COUNT: usize = 8;
    pub(super) const TS_MATCHED_COUNT: usize = 16;
    pub(super) const TS_LEN: usize = 24;

    pub(super) const PS_PORT_NO: usize = 0;
    pub(super) const PS_COUNTERS: usize = 8;
    pub(super) const PS_DURATION_SEC: usize = 104;
    pub(super) const PS_DURATION_NSEC: usize = 108;
    pub(super) const PS_LEN: usize = 112;
}

mod kind {
    pub(super) const DESC: u16 = 0;
    pub(super) const FLOW: u16 = 1;
    pub(super) const AGGREGATE: u16 = 2;
    pub(super) const TABLE: u16 = 3;
    pub(super) const PORT_STATS: u16 = 4;
    pub(super) const PORT_DESC: u16 = 13;
}

/// The body of a flow or aggregate stats request (`ofp_flow_stats_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// Table, or `OFPTT_ALL`.
    pub table_id: u8,
    /// Only flows outputting to this port (`OFPP_ANY`: any).
    pub out_port: u32,
    /// Only flows outputting to this group (`OFPG_ANY`: any).
    pub out_group: u32,
    /// Cookie filter value.
    pub cookie: u64,
    /// Cookie filter mask (0: any cookie).
    pub cookie_mask: u64,
    /// Only flows whose match is contained in this one.
    pub r#match: Match,
}

impl Default for FlowStatsRequest {
    /// All flows of all tables.
    fn default() -> Self {
        Self {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            r#match: Match::any(),
        }
    }
}

impl FlowStatsRequest {
    fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::REQ_MATCH, "flow_stats_request", "body")?;
        let (m, _) = Match::parse(&b[field::REQ_MATCH..]).map_err(|e| e.at(field::REQ_MATCH))?;
        Ok(Self {
            table_id: b[field::REQ_TABLE_ID],
            out_port: get_u32(b, field::REQ_OUT_PORT),
            out_group: get_u32(b, field::REQ_OUT_GROUP),
            cookie: get_u64(b, field::REQ_COOKIE),
            cookie_mask: get_u64(b, field::REQ_COOKIE_MASK),
            r#match: m,
        })
    }

    fn buffer_len(&self) -> usize {
        field::REQ_MATCH + self.r#match.buffer_len()
    }

    fn emit(&self, b: &mut [u8]) {
        b[..field::REQ_MATCH].fill(0);
        b[field::REQ_TABLE_ID] = self.table_id;
        put_u32(b, field::REQ_OUT_PORT, self.out_port);
        put_u32(b, field::REQ_OUT_GROUP, self.out_group);
        put_u64(b, field::REQ_COOKIE, self.cookie);
        put_u64(b, field::REQ_COOKIE_MASK, self.cookie_mask);
        self.r#match.emit(&mut b[field::REQ_MATCH..]);
    }
}

/// What a multipart request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartRequestBody {
    /// OFPMP_DESC.
    Desc,
    /// OFPMP_FLOW.
    Flow(FlowStatsRequest),
    /// OFPMP_AGGREGATE.
    Aggregate(FlowStatsRequest),
    /// OFPMP_TABLE.
    Table,
    /// OFPMP_PORT_STATS for one port or `OFPP_ANY`.
    PortStats {
        /// Port, or `OFPP_ANY`.
        port_no: u32,
    },
    /// OFPMP_PORT_DESC.
    PortDesc,
    /// Any other kind, kept raw.
    Other {
        /// Multipart type.
        kind: u16,
        /// Body after the 8-byte multipart header.
        body: Vec<u8>,
    },
}

/// OFPT_MULTIPART_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRequest {
    /// `OFPMPF_REQ_MORE`.
    pub flags: u16,
    /// The request.
    pub body: MultipartRequestBody,
}

impl MultipartRequest {
    /// A single-part request.
    pub const fn new(body: MultipartRequestBody) -> Self {
        Self { flags: 0, body }
    }

    fn kind(&self) -> u16 {
        match &self.body {
            MultipartRequestBody::Desc => kind::DESC,
            MultipartRequestBody::Flow(_) => kind::FLOW,
            MultipartRequestBody::Aggregate(_) => kind::AGGREGATE,
            MultipartRequestBody::Table => kind::TABLE,
            MultipartRequestBody::PortStats { .. } => kind::PORT_STATS,
            MultipartRequestBody::PortDesc => kind::PORT_DESC,
            MultipartRequestBody::Other { kind, .. } => *kind,
        }
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::BODY, "multipart_request", "header")?;
        let rest = &b[field::BODY..];
        let at = |e: Error| e.at(field::BODY);
        let body = match get_u16(b, field::TYPE) {
            kind::DESC => MultipartRequestBody::Desc,
            kind::FLOW => MultipartRequestBody::Flow(FlowStatsRequest::parse(rest).map_err(at)?),
            kind::AGGREGATE => {
                MultipartRequestBody::Aggregate(FlowStatsRequest::parse(rest).map_err(at)?)
            }
            kind::TABLE => MultipartRequestBody::Table,
            kind::PORT_STATS => {
                check_len(
                    rest,
                    field::PORT_STATS_REQ_LEN,
                    "port_stats_request",
                    "body",
                )
                .map_err(at)?;
                MultipartRequestBody::PortStats {
                    port_no: get_u32(rest, 0),
                }
            }
            kind::PORT_DESC => MultipartRequestBody::PortDesc,
            kind => MultipartRequestBody::Other {
                kind,
                body: rest.to_vec(),
            },
        };
        Ok(Self {
            flags: get_u16(b, field::FLAGS),
            body,
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::BODY
            + match &self.body {
                MultipartRequestBody::Desc
                | MultipartRequestBody::Table
                | MultipartRequestBody::PortDesc => 0,
                MultipartRequestBody::Flow(r) | MultipartRequestBody::Aggregate(r) => {
                    r.buffer_len()
                }
                MultipartRequestBody::PortStats { .. } => field::PORT_STATS_REQ_LEN,
                MultipartRequestBody::Other { body, .. } => body.len(),
            }
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::BODY].fill(0);
        put_u16(b, field::TYPE, self.kind());
        put_u16(b, field::FLAGS, self.flags);
        let rest = &mut b[field::BODY..];
        match &self.body {
            MultipartRequestBody::Desc
            | MultipartRequestBody::Table
            | MultipartRequestBody::PortDesc => {}
            MultipartRequestBody::Flow(r) | MultipartRequestBody::Aggregate(r) => r.emit(rest),
            MultipartRequestBody::PortStats { port_no } => {
                rest[..field::PORT_STATS_REQ_LEN].fill(0);
                put_u32(rest, 0, *port_no);
            }
            MultipartRequestBody::Other { body, .. } => rest.copy_from_slice(body),
        }
    }
}

/// OFPMP_DESC reply: NUL-padded ASCII strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desc {
    /// Manufacturer.
    pub mfr_desc: String,
    /// Hardware.
    pub hw_desc: String,
    /// Software (the OVS version).
    pub sw_desc: String,
    /// Serial number.
    pub serial_num: String,
    /// Datapath description.
    pub dp_desc: String,
}

impl Desc {
    fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::DESC_LEN, "desc", "body")?;
        let s = |r: std::ops::Range<usize>, name| get_str(&b[r.clone()], "desc", name, r.start);
        Ok(Self {
            mfr_desc: s(field::MFR_DESC, "mfr_desc")?,
            hw_desc: s(field::HW_DESC, "hw_desc")?,
            sw_desc: s(field::SW_DESC, "sw_desc")?,
            serial_num: s(field::SERIAL_NUM, "serial_num")?,
            dp_desc: s(field::DP_DESC, "dp_desc")?,
        })
    }

    fn emit(&self, b: &mut [u8]) {
        put_str(&mut b[field::MFR_DESC], &self.mfr_desc);
        put_str(&mut b[field::HW_DESC], &self.hw_desc);
        put_str(&mut b[field::SW_DESC], &self.sw_desc);
        put_str(&mut b[field::SERIAL_NUM], &self.serial_num);
        put_str(&mut b[field::DP_DESC], &self.dp_desc);
    }
}

/// One flow in a flow stats reply (`ofp_flow_stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats {
    /// Table.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Hard timeout.
    pub hard_timeout: u16,
    /// `OFPFF_*` flags.
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The match.
    pub r#match: Match,
    /// The instructions.
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    /// Decodes one entry from the front of `b`; returns it and its length.
    fn parse(b: &[u8]) -> Result<(Self, usize)> {
        check_len(b, field::FS_MATCH, "flow_stats", "body")?;
        let length = usize::from(get_u16(b, field::FS_LENGTH));
        if length < field::FS_MATCH || length > b.len() {
            return Err(Error::bad_len(
                "flow_stats",
                "length",
                field::FS_LENGTH,
                length,
            ));
        }
        let b = &b[..length];
        let (m, used) = Match::parse(&b[field::FS_MATCH..]).map_err(|e| e.at(field::FS_MATCH))?;
        let at = field::FS_MATCH + used;
        let instructions = Instruction::parse_list(&b[at..]).map_err(|e| e.at(at))?;
        let stats = Self {
            table_id: b[field::FS_TABLE_ID],
            duration_sec: get_u32(b, field::FS_DURATION_SEC),
            duration_nsec: get_u32(b, field::FS_DURATION_NSEC),
            priority: get_u16(b, field::FS_PRIORITY),
            idle_timeout: get_u16(b, field::FS_IDLE_TIMEOUT),
            hard_timeout: get_u16(b, field::FS_HARD_TIMEOUT),
            flags: get_u16(b, field::FS_FLAGS),
            cookie: get_u64(b, field::FS_COOKIE),
            packet_count: get_u64(b, field::FS_PACKET_COUNT),
            byte_count: get_u64(b, field::FS_BYTE_COUNT),
            r#match: m,
            instructions,
        };
        Ok((stats, length))
    }

    fn buffer_len(&self) -> usize {
        field::FS_MATCH + self.r#match.buffer_len() + Instruction::list_len(&self.instructions)
    }

    fn emit(&self, b: &mut [u8]) {
        let len = self.buffer_len();
        b[..field::FS_MATCH].fill(0);
        put_u16(b, field::FS_LENGTH, len as u16);
        b[field::FS_TABLE_ID] = self.table_id;
        put_u32(b, field::FS_DURATION_SEC, self.duration_sec);
        put_u32(b, field::FS_DURATION_NSEC, self.duration_nsec);
        put_u16(b, field::FS_PRIORITY, self.priority);
        put_u16(b, field::FS_IDLE_TIMEOUT, self.idle_timeout);
        put_u16(b, field::FS_HARD_TIMEOUT, self.hard_timeout);
        put_u16(b, field::FS_FLAGS, self.flags);
        put_u64(b, field::FS_COOKIE, self.cookie);
        put_u64(b, field::FS_PACKET_COUNT, self.packet_count);
        put_u64(b, field::FS_BYTE_COUNT, self.byte_count);
        self.r#match.emit(&mut b[field::FS_MATCH..]);
        Instruction::emit_list(
            &self.instructions,
            &mut b[field::FS_MATCH + self.r#match.buffer_len()..len],
        );
    }
}

/// OFPMP_AGGREGATE reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AggregateStats {
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// Flows matched.
    pub flow_count: u32,
}

/// One table in a table stats reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Table.
    pub table_id: u8,
    /// Active flows.
    pub active_count: u32,
    /// Packets looked up.
    pub lookup_count: u64,
    /// Packets that hit.
    pub matched_count: u64,
}

/// One port in a port stats reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Port.
    pub port_no: u32,
    /// rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors,
    /// tx_errors, rx_frame_err, rx_over_err, rx_crc_err, collisions, in wire order.
    pub counters: [u64; 12],
    /// Seconds the port has been alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
}

impl PortStats {
    /// Received packets.
    pub const fn rx_packets(&self) -> u64 {
        self.counters[0]
    }
    /// Transmitted packets.
    pub const fn tx_packets(&self) -> u64 {
        self.counters[1]
    }
    /// Received bytes.
    pub const fn rx_bytes(&self) -> u64 {
        self.counters[2]
    }
    /// Transmitted bytes.
    pub const fn tx_bytes(&self) -> u64 {
        self.counters[3]
    }
}

/// What a multipart reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartReplyBody {
    /// OFPMP_DESC.
    Desc(Desc),
    /// OFPMP_FLOW.
    Flow(Vec<FlowStats>),
    /// OFPMP_AGGREGATE.
    Aggregate(AggregateStats),
    /// OFPMP_TABLE.
    Table(Vec<TableStats>),
    /// OFPMP_PORT_STATS.
    PortStats(Vec<PortStats>),
    /// OFPMP_PORT_DESC.
    PortDesc(Vec<Port>),
    /// Any other kind, kept raw.
    Other {
        /// Multipart type.
        kind: u16,
        /// Body after the 8-byte multipart header.
        body: Vec<u8>,
    },
}

/// OFPT_MULTIPART_REPLY: one part, or (after [`Reassembler`]) the whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartReply {
    /// `OFPMPF_REPLY_MORE` when more parts follow.
    pub flags: u16,
    /// The entries.
    pub body: MultipartReplyBody,
}

/// Splits `b` into entries of `size` bytes, failing on a remainder.
fn fixed_entries<T>(
    b: &[u8],
    size: usize,
    what: &'static str,
    f: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>> {
    if b.len() % size != 0 {
        return Err(Error::bad_len(what, "body", 0, b.len()));
    }
    Ok(b.chunks_exact(size).map(f).collect())
}

impl MultipartReply {
    /// Whether more parts follow.
    pub const fn more(&self) -> bool {
        self.flags & OFPMPF_REPLY_MORE != 0
    }

    /// The multipart type code.
    pub fn kind(&self) -> u16 {
        match &self.body {
            MultipartReplyBody::Desc(_) => kind::DESC,
            MultipartReplyBody::Flow(_) => kind::FLOW,
            MultipartReplyBody::Aggregate(_) => kind::AGGREGATE,
            MultipartReplyBody::Table(_) => kind::TABLE,
            MultipartReplyBody::PortStats(_) => kind::PORT_STATS,
            MultipartReplyBody::PortDesc(_) => kind::PORT_DESC,
            MultipartReplyBody::Other { kind, .. } => *kind,
        }
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::BODY, "multipart_reply", "header")?;
        let rest = &b[field::BODY..];
        let at = |e: Error| e.at(field::BODY);
        let body = match get_u16(b, field::TYPE) {
            kind::DESC => MultipartReplyBody::Desc(Desc::parse(rest).map_err(at)?),
            kind::FLOW => {
                let mut flows = Vec::new();
                let mut off = 0;
                while off < rest.len() {
                    let (f, used) =
                        FlowStats::parse(&rest[off..]).map_err(|e| e.at(field::BODY + off))?;
                    flows.push(f);
                    off += used;
                }
                MultipartReplyBody::Flow(flows)
            }
            kind::AGGREGATE => {
                check_len(rest, field::AGG_LEN, "aggregate_stats", "body").map_err(at)?;
                MultipartReplyBody::Aggregate(AggregateStats {
                    packet_count: get_u64(rest, field::AGG_PACKET_COUNT),
                    byte_count: get_u64(rest, field::AGG_BYTE_COUNT),
                    flow_count: get_u32(rest, field::AGG_FLOW_COUNT),
                })
            }
            kind::TABLE => MultipartReplyBody::Table(
                fixed_entries(rest, field::TS_LEN, "table_stats", |e| TableStats {
                    table_id: e[field::TS_TABLE_ID],
                    active_count: get_u32(e, field::TS_ACTIVE_COUNT),
                    lookup_count: get_u64(e, field::TS_LOOKUP_COUNT),
                    matched_count: get_u64(e, field::TS_MATCHED_COUNT),
                })
                .map_err(at)?,
            ),
            kind::PORT_STATS => MultipartReplyBody::PortStats(
                fixed_entries(rest, field::PS_LEN, "port_stats", |e| PortStats {
                    port_no: get_u32(e, field::PS_PORT_NO),
                    counters: std::array::from_fn(|i| get_u64(e, field::PS_COUNTERS + 8 * i)),
                    duration_sec: get_u32(e, field::PS_DURATION_SEC),
                    duration_nsec: get_u32(e, field::PS_DURATION_NSEC),
                })
                .map_err(at)?,
            ),
            kind::PORT_DESC => {
                if rest.len() % Port::LEN != 0 {
                    return Err(Error::bad_len("port_desc", "body", field::BODY, rest.len()));
                }
                let ports = rest
                    .chunks_exact(Port::LEN)
                    .enumerate()
                    .map(|(i, c)| Port::parse(c).map_err(|e| e.at(field::BODY + i * Port::LEN)))
                    .collect::<Result<_>>()?;
                MultipartReplyBody::PortDesc(ports)
            }
            kind => MultipartReplyBody::Other {
                kind,
                body: rest.to_vec(),
            },
        };
        Ok(Self {
            flags: get_u16(b, field::FLAGS),
            body,
        })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        field::BODY
            + match &self.body {
                MultipartReplyBody::Desc(_) => field::DESC_LEN,
                MultipartReplyBody::Flow(f) => f.iter().map(FlowStats::buffer_len).sum(),
                MultipartReplyBody::Aggregate(_) => field::AGG_LEN,
                MultipartReplyBody::Table(t) => t.len() * field::TS_LEN,
                MultipartReplyBody::PortStats(p) => p.len() * field::PS_LEN,
                MultipartReplyBody::PortDesc(p) => p.len() * Port::LEN,
                MultipartReplyBody::Other { body, .. } => body.len(),
            }
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::BODY].fill(0);
        put_u16(b, field::TYPE, self.kind());
        put_u16(b, field::FLAGS, self.flags);
        let rest = &mut b[field::BODY..];
        match &self.body {
            MultipartReplyBody::Desc(d) => d.emit(rest),
            MultipartReplyBody::Flow(flows) => {
                let mut off = 0;
                for f in flows {
                    f.emit(&mut rest[off..]);
                    off += f.buffer_len();
                }
            }
            MultipartReplyBody::Aggregate(a) => {
                rest[..field::AGG_LEN].fill(0);
                put_u64(rest, field::AGG_PACKET_COUNT, a.packet_count);
                put_u64(rest, field::AGG_BYTE_COUNT, a.byte_count);
                put_u32(rest, field::AGG_FLOW_COUNT, a.flow_count);
            }
            MultipartReplyBody::Table(tables) => {
                for (t, e) in tables.iter().zip(rest.chunks_exact_mut(field::TS_LEN)) {
                    e.fill(0);
                    e[field::TS_TABLE_ID] = t.table_id;
                    put_u32(e, field::TS_ACTIVE_COUNT, t.active_count);
                    put_u64(e, field::TS_LOOKUP_COUNT, t.lookup_count);
                    put_u64(e, field::TS_MATCHED_COUNT, t.matched_count);
                }
            }
            MultipartReplyBody::PortStats(ports) => {
                for (p, e) in ports.iter().zip(rest.chunks_exact_mut(field::PS_LEN)) {
                    e.fill(0);
                    put_u32(e, field::PS_PORT_NO, p.port_no);
                    for (i, c) in p.counters.iter().enumerate() {
                        put_u64(e, field::PS_COUNTERS + 8 * i, *c);
                    }
                    put_u32(e, field::PS_DURATION_SEC, p.duration_sec);
                    put_u32(e, field::PS_DURATION_NSEC, p.duration_nsec);
                }
            }
            MultipartReplyBody::PortDesc(ports) => {
                for (p, e) in ports.iter().zip(rest.chunks_exact_mut(Port::LEN)) {
                    p.emit(e);
                }
            }
            MultipartReplyBody::Other { body, .. } => rest.copy_from_slice(body),
        }
    }

    /// Appends the entries of a later part of the same reply.
    fn append(&mut self, part: Self) -> Result<()> {
        use MultipartReplyBody as B;
        let kind = part.kind();
        match (&mut self.body, part.body) {
            (B::Flow(a), B::Flow(b)) => a.extend(b),
            (B::Table(a), B::Table(b)) => a.extend(b),
            (B::PortStats(a), B::PortStats(b)) => a.extend(b),
            (B::PortDesc(a), B::PortDesc(b)) => a.extend(b),
            (B::Other { kind: k, body: a }, B::Other { body: b, .. }) if *k == kind => a.extend(b),
            _ => {
                return Err(Error::bad_value(
                    "multipart_reply",
                    "type",
                    field::TYPE,
                    u64::from(kind),
                ));
            }
        }
        self.flags = part.flags;
        Ok(())
    }
}

/// Joins `OFPMPF_REPLY_MORE` parts by xid into one reply.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<u32, MultipartReply>,
}

impl Reassembler {
    /// A reassembler with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one part. Returns the whole reply once the last part (without
    /// `OFPMPF_REPLY_MORE`) arrives; fails if a part's type differs from the first part's.
    pub fn push(&mut self, xid: u32, part: MultipartReply) -> Result<Option<MultipartReply>> {
        let whole = match self.partial.remove(&xid) {
            Some(mut acc) => {
                acc.append(part)?;
                acc
            }
            None => part,
        };
        if whole.more() {
            self.partial.insert(xid, whole);
            Ok(None)
        } else {
            Ok(Some(whole))
        }
    }

    /// Drops a partial reply (its request timed out or failed).
    pub fn forget(&mut self, xid: u32) {
        self.partial.remove(&xid);
    }

    /// Number of replies still waiting for parts.
    pub fn in_flight(&self) -> usize {
        self.partial.len()
    }
}
