//! MULTIPART request/reply fixtures and REPLY_MORE reassembly.

mod support;

use ovswire_openflow::msg::{
    AggregateStats, Desc, FlowStats, FlowStatsRequest, MultipartRequest, MultipartRequestBody,
    Port, PortStats, Reassembler, TableStats,
};
use ovswire_openflow::types::OFPMPF_REPLY_MORE;
use ovswire_openflow::{
    Action, Frame, Instruction, MacAddr, Match, Message, MultipartReply, MultipartReplyBody,
    OFPP_ANY, OxmField,
};
use support::check;

#[test]
fn flow_stats_request() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x12, 0x00, 0x38, // OFPT_MULTIPART_REQUEST, length 56
        0x00, 0x00, 0x00, 0x10, // xid 16
        0x00, 0x01,             // type OFPMP_FLOW
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0xff,                   // table_id OFPTT_ALL
        0x00, 0x00, 0x00,       // pad
        0xff, 0xff, 0xff, 0xff, // out_port OFPP_ANY
        0xff, 0xff, 0xff, 0xff, // out_group OFPG_ANY
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask
        0x00, 0x01, 0x00, 0x04, // match: OFPMT_OXM, length 4 (empty)
        0x00, 0x00, 0x00, 0x00, // match padding to 8
    ];
    let req = MultipartRequest::new(MultipartRequestBody::Flow(FlowStatsRequest::default()));
    check(&raw, &Frame::new(16, Message::MultipartRequest(req)));
}

#[test]
fn simple_requests() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x12, 0x00, 0x10, // OFPT_MULTIPART_REQUEST, length 16
        0x00, 0x00, 0x00, 0x11, // xid 17
        0x00, 0x0d,             // type OFPMP_PORT_DESC
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    check(
        &raw,
        &Frame::new(
            17,
            Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::PortDesc)),
        ),
    );
    #[rustfmt::skip]
    let raw = [
        0x04, 0x12, 0x00, 0x18, // OFPT_MULTIPART_REQUEST, length 24
        0x00, 0x00, 0x00, 0x12, // xid 18
        0x00, 0x04,             // type OFPMP_PORT_STATS
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0xff, 0xff, 0xff, 0xff, // port_no OFPP_ANY
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    let req = MultipartRequest::new(MultipartRequestBody::PortStats { port_no: OFPP_ANY });
    check(&raw, &Frame::new(18, Message::MultipartRequest(req)));
    for (kind, body) in [
        (0u8, MultipartRequestBody::Desc),
        (3, MultipartRequestBody::Table),
    ] {
        let raw = [
            0x04, 0x12, 0x00, 0x10, 0, 0, 0, 0x13, 0x00, kind, 0, 0, 0, 0, 0, 0,
        ];
        check(
            &raw,
            &Frame::new(19, Message::MultipartRequest(MultipartRequest::new(body))),
        );
    }
    #[rustfmt::skip]
    let raw = [
        0x04, 0x12, 0x00, 0x14, // OFPT_MULTIPART_REQUEST, length 20
        0x00, 0x00, 0x00, 0x14, // xid 20
        0x00, 0x07,             // type OFPMP_GROUP_DESC (kept raw)
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0x01, 0x02, 0x03, 0x04, // body
    ];
    let req = MultipartRequest::new(MultipartRequestBody::Other {
        kind: 7,
        body: vec![1, 2, 3, 4],
    });
    check(&raw, &Frame::new(20, Message::MultipartRequest(req)));
}

fn flow_stats_part(more: bool, cookie: u8) -> [u8; 104] {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x13, 0x00, 0x68, // OFPT_MULTIPART_REPLY, length 104
        0x00, 0x00, 0x00, 0x20, // xid 32
        0x00, 0x01,             // type OFPMP_FLOW
        0x00, u8::from(more),   // flags: OFPMPF_REPLY_MORE when more parts follow
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x58,             // ofp_flow_stats.length 88
        0x00,                   // table_id 0
        0x00,                   // pad
        0x00, 0x00, 0x00, 0x05, // duration_sec 5
        0x00, 0x00, 0x00, 0x06, // duration_nsec 6
        0x00, 0x64,             // priority 100
        0x00, 0x00,             // idle_timeout
        0x00, 0x00,             // hard_timeout
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, cookie, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // packet_count 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc8, // byte_count 200
        0x00, 0x01, 0x00, 0x0c, // match: OFPMT_OXM, length 12
        0x80, 0x00, 0x00, 0x04, // OXM in_port
        0x00, 0x00, 0x00, 0x01, //   1
        0x00, 0x00, 0x00, 0x00, // match padding to 16
        0x00, 0x04, 0x00, 0x18, // OFPIT_APPLY_ACTIONS, length 24
        0x00, 0x00, 0x00, 0x00, //   pad
        0x00, 0x00, 0x00, 0x10, //   OFPAT_OUTPUT, length 16
        0x00, 0x00, 0x00, 0x02, //     port 2
        0x00, 0x00,             //     max_len
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad
    ];
    raw
}

fn flow_stats(cookie: u64) -> FlowStats {
    FlowStats {
        table_id: 0,
        duration_sec: 5,
        duration_nsec: 6,
        priority: 100,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie,
        packet_count: 2,
        byte_count: 200,
        r#match: Match::any().with(OxmField::InPort(1)),
        instructions: vec![Instruction::ApplyActions(vec![Action::output(2)])],
    }
}

#[test]
fn flow_stats_reply_parts_reassemble() {
    let first = flow_stats_part(true, 1);
    let last = flow_stats_part(false, 2);
    let part1 = MultipartReply {
        flags: OFPMPF_REPLY_MORE,
        body: MultipartReplyBody::Flow(vec![flow_stats(1)]),
    };
    let part2 = MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Flow(vec![flow_stats(2)]),
    };
    check(
        &first,
        &Frame::new(32, Message::MultipartReply(part1.clone())),
    );
    check(
        &last,
        &Frame::new(32, Message::MultipartReply(part2.clone())),
    );

    // The spec: "OFPMPF_REPLY_MORE ... more replies will follow"; parts share the xid.
    let mut r = Reassembler::new();
    assert_eq!(r.push(32, part1).unwrap(), None);
    assert_eq!(r.in_flight(), 1);
    let whole = r.push(32, part2).unwrap().unwrap();
    assert_eq!(
        whole.body,
        MultipartReplyBody::Flow(vec![flow_stats(1), flow_stats(2)])
    );
    assert!(!whole.more());
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn reassembler_refuses_mixed_kinds() {
    let mut r = Reassembler::new();
    let part1 = MultipartReply {
        flags: OFPMPF_REPLY_MORE,
        body: MultipartReplyBody::Flow(vec![]),
    };
    let part2 = MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Table(vec![]),
    };
    assert_eq!(r.push(1, part1).unwrap(), None);
    assert!(r.push(1, part2).is_err());
}

#[test]
fn flow_stats_length_is_checked() {
    let mut raw = flow_stats_part(false, 1);
    raw[17] = 0x60; // ofp_flow_stats.length 96: beyond the message
    assert!(Frame::parse(&raw).is_err());
    raw[17] = 0x20; // 32: shorter than the fixed part
    assert!(Frame::parse(&raw).is_err());
}

#[test]
fn port_desc_reply() {
    let mut raw = vec![
        0x04, 0x13, 0x00, 0x50, // OFPT_MULTIPART_REPLY, length 80
        0x00, 0x00, 0x00, 0x21, // xid 33
        0x00, 0x0d, // type OFPMP_PORT_DESC
        0x00, 0x00, // flags
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    #[rustfmt::skip]
    raw.extend_from_slice(&[
        0xff, 0xff, 0xff, 0xfe, // port_no OFPP_LOCAL
        0x00, 0x00, 0x00, 0x00, // pad
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // hw_addr
        0x00, 0x00,             // pad
        b'o', b'v', b's', b'b', b'r', b'0', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // name "ovsbr0"
        0x00, 0x00, 0x00, 0x00, // config
        0x00, 0x00, 0x00, 0x04, // state OFPPS_LIVE
        0x00, 0x00, 0x00, 0x00, // curr
        0x00, 0x00, 0x00, 0x00, // advertised
        0x00, 0x00, 0x00, 0x00, // supported
        0x00, 0x00, 0x00, 0x00, // peer
        0x00, 0x00, 0x00, 0x00, // curr_speed
        0x00, 0x00, 0x00, 0x00, // max_speed
    ]);
    let port = Port {
        port_no: 0xffff_fffe,
        hw_addr: MacAddr([2, 0, 0, 0, 0, 1]),
        name: "ovsbr0".into(),
        state: 4,
        ..Port::default()
    };
    let reply = MultipartReply {
        flags: 0,
        body: MultipartReplyBody::PortDesc(vec![port]),
    };
    check(&raw, &Frame::new(33, Message::MultipartReply(reply)));
}

#[test]
fn aggregate_table_port_stats_and_desc_replies() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x13, 0x00, 0x28, // OFPT_MULTIPART_REPLY, length 40
        0x00, 0x00, 0x00, 0x22, // xid 34
        0x00, 0x02,             // type OFPMP_AGGREGATE
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, // packet_count 10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // byte_count 1000
        0x00, 0x00, 0x07, 0xd0, // flow_count 2000
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    let agg = AggregateStats {
        packet_count: 10,
        byte_count: 1000,
        flow_count: 2000,
    };
    let reply = MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Aggregate(agg),
    };
    check(&raw, &Frame::new(34, Message::MultipartReply(reply)));

    #[rustfmt::skip]
    let raw = [
        0x04, 0x13, 0x00, 0x28, // OFPT_MULTIPART_REPLY, length 40
        0x00, 0x00, 0x00, 0x23, // xid 35
        0x00, 0x03,             // type OFPMP_TABLE
        0x00, 0x00,             // flags
        0x00, 0x00, 0x00, 0x00, // pad
        0x00,                   // table_id 0
        0x00, 0x00, 0x00,       // pad
        0x00, 0x00, 0x00, 0x02, // active_count 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // lookup_count 9
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, // matched_count 8
    ];
    let table = TableStats {
        table_id: 0,
        active_count: 2,
        lookup_count: 9,
        matched_count: 8,
    };
    let reply = MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Table(vec![table]),
    };
    check(&raw, &Frame::new(35, Message::MultipartReply(reply)));

    let stats = PortStats {
        port_no: 10,
        counters: std::array::from_fn(|i| i as u64),
        duration_sec: 1,
        duration_nsec: 2,
    };
    let frame = Frame::new(
        36,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::PortStats(vec![stats; 2]),
        }),
    );
    let raw = frame.to_vec().unwrap();
    assert_eq!(raw.len(), 16 + 2 * 112, "ofp_port_stats is 112 bytes");
    check(&raw, &frame);

    let desc = Desc {
        mfr_desc: "Nicira, Inc.".into(),
        hw_desc: "Open vSwitch".into(),
        sw_desc: "3.1.0".into(),
        serial_num: "None".into(),
        dp_desc: "None".into(),
    };
    let frame = Frame::new(
        37,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Desc(desc),
        }),
    );
    let raw = frame.to_vec().unwrap();
    assert_eq!(raw.len(), 16 + 1056, "ofp_desc is 1056 bytes");
    check(&raw, &frame);
}

#[test]
fn unknown_multipart_reply_round_trips() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x13, 0x00, 0x13, // OFPT_MULTIPART_REPLY, length 19
        0x00, 0x00, 0x00, 0x26, // xid 38
        0xff, 0xff,             // type OFPMP_EXPERIMENTER (kept raw)
        0x00, 0x01,             // flags OFPMPF_REPLY_MORE
        0x00, 0x00, 0x00, 0x00, // pad
        0x0a, 0x0b, 0x0c,       // body
    ];
    let reply = MultipartReply {
        flags: 1,
        body: MultipartReplyBody::Other {
            kind: 0xffff,
            body: vec![10, 11, 12],
        },
    };
    check(&raw, &Frame::new(38, Message::MultipartReply(reply)));
}
