//! FLOW_MOD (match, instructions, actions) and FLOW_REMOVED fixtures.

mod support;

use std::net::Ipv4Addr;

use ovswire_openflow::msg::{FlowModCommand, FlowRemoved, FlowRemovedReason};
use ovswire_openflow::types::flow_mod_flags::OFPFF_SEND_FLOW_REM;
use ovswire_openflow::{
    Action, FlowMod, Frame, Instruction, MacAddr, Match, Message, OFPCML_NO_BUFFER, OFPG_ANY,
    OFPP_ANY, OFPP_CONTROLLER, OFPTT_ALL, OxmField,
};
use support::check;

#[test]
fn flow_mod_add_with_match_and_actions() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0e, 0x00, 0x98, // OFPT_FLOW_MOD, length 152
        0x00, 0x00, 0x00, 0x0a, // xid 10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, // cookie 0x42
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask 0
        0x00,                   // table_id 0
        0x00,                   // command OFPFC_ADD
        0x00, 0x3c,             // idle_timeout 60
        0x00, 0x00,             // hard_timeout 0
        0x00, 0x64,             // priority 100
        0xff, 0xff, 0xff, 0xff, // buffer_id OFP_NO_BUFFER
        0xff, 0xff, 0xff, 0xff, // out_port OFPP_ANY
        0xff, 0xff, 0xff, 0xff, // out_group OFPG_ANY
        0x00, 0x01,             // flags OFPFF_SEND_FLOW_REM
        0x00, 0x00,             // pad
        0x00, 0x01, 0x00, 0x2a, // match: OFPMT_OXM, length 42 (excluding padding)
        0x80, 0x00, 0x00, 0x04, // OXM in_port (field 0), length 4
        0x00, 0x00, 0x80, 0x00, //   32768
        0x80, 0x00, 0x0a, 0x02, // OXM eth_type (field 5), length 2
        0x08, 0x00,             //   IPv4
        0x80, 0x00, 0x17, 0x08, // OXM ipv4_src (field 11) with mask, length 8
        0x0a, 0x00, 0x00, 0x00, //   10.0.0.0
        0xff, 0x00, 0x00, 0x00, //   /8
        0x80, 0x00, 0x4c, 0x08, // OXM tunnel_id (field 38), length 8
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x89, // 5001
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // match padding to 48
        0x00, 0x04, 0x00, 0x30, // instruction OFPIT_APPLY_ACTIONS, length 48
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x19, 0x00, 0x10, // action OFPAT_SET_FIELD, length 16
        0x80, 0x00, 0x4c, 0x08, //   OXM tunnel_id, length 8
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x8a, // 5002
        0x00, 0x11, 0x00, 0x08, // action OFPAT_PUSH_VLAN, length 8
        0x81, 0x00, 0x00, 0x00, //   ethertype 0x8100, pad
        0x00, 0x00, 0x00, 0x10, // action OFPAT_OUTPUT, length 16
        0x00, 0x00, 0x80, 0x01, //   port 32769
        0x00, 0x00,             //   max_len 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x01, 0x00, 0x08, // instruction OFPIT_GOTO_TABLE, length 8
        0x01, 0x00, 0x00, 0x00, //   table 1, pad
    ];
    let flow = FlowMod::add(0)
        .cookie(0x42)
        .idle_timeout(60)
        .priority(100)
        .flags(OFPFF_SEND_FLOW_REM)
        .match_field(OxmField::InPort(32768))
        .match_field(OxmField::EthType(0x0800))
        .match_field(OxmField::Ipv4Src(
            Ipv4Addr::new(10, 0, 0, 0),
            Some(Ipv4Addr::new(255, 0, 0, 0)),
        ))
        .match_field(OxmField::TunnelId(5001, None))
        .apply_actions(vec![
            Action::SetField(OxmField::TunnelId(5002, None)),
            Action::PushVlan(0x8100),
            Action::output(32769),
        ])
        .goto_table(1);
    check(&raw, &Frame::new(10, Message::FlowMod(flow)));
}

#[test]
fn flow_mod_delete_by_cookie_drop_and_write_instructions() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0e, 0x00, 0x90, // OFPT_FLOW_MOD, length 144
        0x00, 0x00, 0x00, 0x0b, // xid 11
        0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, // cookie: generation 7
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, // cookie_mask: high 32 bits
        0xff,                   // table_id OFPTT_ALL (deletes across tables need it)
        0x03,                   // command OFPFC_DELETE
        0x00, 0x00,             // idle_timeout
        0x00, 0x00,             // hard_timeout
        0x80, 0x00,             // priority (ignored by delete)
        0xff, 0xff, 0xff, 0xff, // buffer_id
        0xff, 0xff, 0xff, 0xff, // out_port OFPP_ANY
        0xff, 0xff, 0xff, 0xff, // out_group OFPG_ANY
        0x00, 0x00,             // flags
        0x00, 0x00,             // pad
        0x00, 0x01, 0x00, 0x1a, // match: OFPMT_OXM, length 26
        0x80, 0x00, 0x07, 0x0c, // OXM eth_dst (field 3) with mask, length 12
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // 02:00:00:00:00:01
        0xff, 0xff, 0xff, 0xff, 0xff, 0x00, // ff:ff:ff:ff:ff:00
        0x80, 0x00, 0x0c, 0x02, // OXM vlan_vid (field 6), length 2
        0x10, 0x0a,             //   OFPVID_PRESENT | 10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // match padding to 32
        0x00, 0x04, 0x00, 0x08, // OFPIT_APPLY_ACTIONS, length 8: no actions = drop
        0x00, 0x00, 0x00, 0x00, //   pad
        0x00, 0x02, 0x00, 0x18, // OFPIT_WRITE_METADATA, length 24
        0x00, 0x00, 0x00, 0x00, //   pad
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // metadata 5
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, // metadata_mask 0xff
        0x00, 0x03, 0x00, 0x10, // OFPIT_WRITE_ACTIONS, length 16
        0x00, 0x00, 0x00, 0x00, //   pad
        0x00, 0x16, 0x00, 0x08, //   OFPAT_GROUP, length 8
        0x00, 0x00, 0x00, 0x03, //     group 3
        0x00, 0x05, 0x00, 0x08, // OFPIT_CLEAR_ACTIONS, length 8
        0x00, 0x00, 0x00, 0x00, //   pad
        0x00, 0x06, 0x00, 0x08, // OFPIT_METER, length 8
        0x00, 0x00, 0x00, 0x01, //   meter 1
    ];
    let flow = FlowMod::delete(OFPTT_ALL)
        .cookie_filter(7 << 32, 0xffff_ffff_0000_0000)
        .match_field(OxmField::EthDst(
            MacAddr([2, 0, 0, 0, 0, 1]),
            Some(MacAddr([0xff, 0xff, 0xff, 0xff, 0xff, 0])),
        ))
        .match_field(OxmField::VlanVid(0x100a, None))
        .apply_actions(vec![])
        .instruction(Instruction::WriteMetadata {
            metadata: 5,
            mask: 0xff,
        })
        .instruction(Instruction::WriteActions(vec![Action::Group(3)]))
        .instruction(Instruction::ClearActions)
        .instruction(Instruction::Meter(1));
    assert_eq!((flow.out_port, flow.out_group), (OFPP_ANY, OFPG_ANY));
    assert_eq!(flow.command, FlowModCommand::Delete);
    check(&raw, &Frame::new(11, Message::FlowMod(flow)));
}

#[test]
fn unknown_and_experimenter_items_round_trip_raw() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0e, 0x00, 0xa0, // OFPT_FLOW_MOD, length 160
        0x00, 0x00, 0x00, 0x0c, // xid 12
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask
        0x02,                   // table_id 2
        0x02,                   // command OFPFC_MODIFY_STRICT
        0x00, 0x00,             // idle_timeout
        0x00, 0x0a,             // hard_timeout 10
        0x00, 0x01,             // priority 1
        0xff, 0xff, 0xff, 0xff, // buffer_id
        0xff, 0xff, 0xff, 0xff, // out_port
        0xff, 0xff, 0xff, 0xff, // out_group
        0x00, 0x00,             // flags
        0x00, 0x00,             // pad
        0x00, 0x01, 0x00, 0x1d, // match: OFPMT_OXM, length 29
        0x00, 0x01, 0x02, 0x04, // OXM class NXM_1 (0x0001), field 1, length 4: kept raw
        0xaa, 0xbb, 0xcc, 0xdd, //   payload
        0xff, 0xff, 0x04, 0x05, // OXM experimenter class, field 2, length 5
        0x00, 0x00, 0x23, 0x20, //   experimenter id (Nicira)
        0x01,                   //   payload
        0x80, 0x00, 0x01, 0x04, // OXM in_port with the hasmask bit (not allowed): kept raw
        0x00, 0x00, 0x00, 0x01, //   value + no room for a mask
        0x00, 0x00, 0x00,       // match padding to 32
        0x00, 0x04, 0x00, 0x38, // OFPIT_APPLY_ACTIONS, length 56
        0x00, 0x00, 0x00, 0x00, //   pad
        0xff, 0xff, 0x00, 0x10, //   OFPAT_EXPERIMENTER, length 16
        0x00, 0x00, 0x23, 0x20, //     experimenter Nicira
        0x00, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // NX payload, kept raw
        0x00, 0x63, 0x00, 0x08, //   action type 99 (unknown), length 8
        0x01, 0x02, 0x03, 0x04, //     body kept raw
        0x00, 0x18, 0x00, 0x08, //   OFPAT_DEC_NW_TTL, length 8
        0x00, 0x00, 0x00, 0x00, //     pad
        0x00, 0x00, 0x00, 0x10, //   OFPAT_OUTPUT, length 16
        0xff, 0xff, 0xff, 0xfd, //     OFPP_CONTROLLER
        0xff, 0xff,             //     max_len OFPCML_NO_BUFFER
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad
        0xff, 0xff, 0x00, 0x10, // OFPIT_EXPERIMENTER, length 16
        0x00, 0x00, 0x23, 0x20, //   experimenter
        0x09, 0x08, 0x07, 0x06, //   payload
        0x05, 0x04, 0x03, 0x02, //   payload
        0x00, 0x07, 0x00, 0x08, // instruction type 7 (unknown), length 8
        0x0a, 0x0b, 0x0c, 0x0d, //   body
    ];
    let m = Match {
        fields: vec![
            OxmField::Other {
                class: 1,
                field: 1,
                has_mask: false,
                payload: vec![0xaa, 0xbb, 0xcc, 0xdd],
            },
            OxmField::Other {
                class: 0xffff,
                field: 2,
                has_mask: false,
                payload: vec![0, 0, 0x23, 0x20, 1],
            },
            OxmField::Other {
                class: 0x8000,
                field: 0,
                has_mask: true,
                payload: vec![0, 0, 0, 1],
            },
        ],
    };
    let flow = FlowMod::modify_strict(2)
        .hard_timeout(10)
        .priority(1)
        .with_match(m)
        .apply_actions(vec![
            Action::Experimenter {
                experimenter: 0x2320,
                data: vec![0, 0x15, 0, 0, 0, 0, 0, 0],
            },
            Action::Unknown {
                kind: 99,
                body: vec![1, 2, 3, 4],
            },
            Action::DecNwTtl,
            Action::Output {
                port: OFPP_CONTROLLER,
                max_len: OFPCML_NO_BUFFER,
            },
        ])
        .instruction(Instruction::Experimenter {
            experimenter: 0x2320,
            data: vec![9, 8, 7, 6, 5, 4, 3, 2],
        })
        .instruction(Instruction::Unknown {
            kind: 7,
            body: vec![0xa, 0xb, 0xc, 0xd],
        });
    check(&raw, &Frame::new(12, Message::FlowMod(flow)));
}

#[test]
fn every_action_kind() {
    let actions = vec![
        Action::CopyTtlOut,
        Action::CopyTtlIn,
        Action::SetMplsTtl(9),
        Action::DecMplsTtl,
        Action::PopVlan,
        Action::PushMpls(0x8847),
        Action::PopMpls(0x0800),
        Action::SetQueue(4),
        Action::SetNwTtl(64),
        Action::PushPbb(0x88e7),
        Action::PopPbb,
        Action::SetField(OxmField::VlanPcp(3)),
        Action::SetField(OxmField::EthSrc(MacAddr([2, 0, 0, 0, 0, 9]), None)),
    ];
    let frame = Frame::new(1, Message::FlowMod(FlowMod::add(0).apply_actions(actions)));
    let raw = frame.to_vec().unwrap();
    // Every action is 8-byte aligned: the spec says "The length of an action MUST always be a
    // multiple of eight".
    assert_eq!(raw.len() % 8, 0);
    check(&raw, &frame);
}

#[test]
fn action_length_not_multiple_of_8_is_refused() {
    let mut raw = Frame::new(
        1,
        Message::FlowMod(FlowMod::add(0).apply_actions(vec![Action::PopVlan])),
    )
    .to_vec()
    .unwrap();
    // The action header sits after the 48-byte fixed part + 8-byte empty match + 8-byte
    // instruction header. The spec: an action's length "MUST always be a multiple of eight".
    let at = 48 + 8 + 8 + 2;
    raw[at..at + 2].copy_from_slice(&12u16.to_be_bytes());
    assert!(Frame::parse(&raw).is_err());
}

#[test]
fn flow_removed() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0b, 0x00, 0x40, // OFPT_FLOW_REMOVED, length 64
        0x00, 0x00, 0x00, 0x00, // xid 0 (asynchronous)
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, // cookie 0x42
        0x00, 0x64,             // priority 100
        0x00,                   // reason OFPRR_IDLE_TIMEOUT
        0x00,                   // table_id 0
        0x00, 0x00, 0x00, 0x3c, // duration_sec 60
        0x00, 0x00, 0x01, 0xf4, // duration_nsec 500
        0x00, 0x3c,             // idle_timeout 60
        0x00, 0x00,             // hard_timeout 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // packet_count 3
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c, // byte_count 300
        0x00, 0x01, 0x00, 0x0c, // match: OFPMT_OXM, length 12
        0x80, 0x00, 0x00, 0x04, // OXM in_port
        0x00, 0x00, 0x00, 0x05, //   5
        0x00, 0x00, 0x00, 0x00, // match padding to 16
    ];
    let removed = FlowRemoved {
        cookie: 0x42,
        priority: 100,
        reason: FlowRemovedReason::IdleTimeout,
        table_id: 0,
        duration_sec: 60,
        duration_nsec: 500,
        idle_timeout: 60,
        hard_timeout: 0,
        packet_count: 3,
        byte_count: 300,
        r#match: Match::any().with(OxmField::InPort(5)),
    };
    check(&raw, &Frame::new(0, Message::FlowRemoved(removed)));
}

#[test]
fn every_match_field_round_trips() {
    use std::net::Ipv6Addr;
    let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let fields = vec![
        OxmField::InPort(1),
        OxmField::InPhyPort(2),
        OxmField::Metadata(3, Some(0xff)),
        OxmField::EthDst(mac, None),
        OxmField::EthSrc(mac, Some(mac)),
        OxmField::EthType(0x86dd),
        OxmField::VlanVid(0x1000, Some(0x1000)),
        OxmField::VlanPcp(5),
        OxmField::IpDscp(46),
        OxmField::IpEcn(1),
        OxmField::IpProto(6),
        OxmField::Ipv4Src(Ipv4Addr::new(10, 0, 0, 1), None),
        OxmField::Ipv4Dst(
            Ipv4Addr::new(10, 0, 0, 2),
            Some(Ipv4Addr::new(255, 255, 255, 0)),
        ),
        OxmField::TcpSrc(179),
        OxmField::TcpDst(646),
        OxmField::UdpSrc(4789),
        OxmField::UdpDst(53),
        OxmField::SctpSrc(1),
        OxmField::SctpDst(2),
        OxmField::Icmpv4Type(8),
        OxmField::Icmpv4Code(0),
        OxmField::ArpOp(1),
        OxmField::ArpSpa(Ipv4Addr::new(10, 0, 0, 1), None),
        OxmField::ArpTpa(Ipv4Addr::new(10, 0, 0, 2), Some(Ipv4Addr::BROADCAST)),
        OxmField::ArpSha(mac, None),
        OxmField::ArpTha(mac, Some(mac)),
        OxmField::Ipv6Src(v6, None),
        OxmField::Ipv6Dst(v6, Some(v6)),
        OxmField::TunnelId(0xff_ffff, Some(0xff_ffff)),
    ];
    let frame = Frame::new(
        1,
        Message::FlowMod(FlowMod::add(0).with_match(Match { fields })),
    );
    let raw = frame.to_vec().unwrap();
    assert_eq!(raw.len() % 8, 0, "the match is padded to 8");
    check(&raw, &frame);
}
