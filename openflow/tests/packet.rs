//! PACKET_IN and PACKET_OUT fixtures.

mod support;

use ovswire_openflow::msg::{PacketIn, PacketInReason, PacketOut};
use ovswire_openflow::{Action, Frame, Match, Message, OFP_NO_BUFFER, OFPP_CONTROLLER, OxmField};
use support::check;

#[test]
fn packet_in() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0a, 0x00, 0x2e, // OFPT_PACKET_IN, length 46
        0x00, 0x00, 0x00, 0x00, // xid 0
        0xff, 0xff, 0xff, 0xff, // buffer_id OFP_NO_BUFFER
        0x00, 0x40,             // total_len 64
        0x01,                   // reason OFPR_ACTION
        0x03,                   // table_id 3
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // cookie 7
        0x00, 0x01, 0x00, 0x0c, // match: OFPMT_OXM, length 12
        0x80, 0x00, 0x00, 0x04, // OXM in_port
        0x00, 0x00, 0x00, 0x0a, //   10
        0x00, 0x00, 0x00, 0x00, // match padding to 16
        0x00, 0x00,             // pad[2]
        0x01, 0x80, 0xc2, 0x00, // data: the first bytes of an STP frame (truncated)
    ];
    let packet_in = PacketIn {
        buffer_id: OFP_NO_BUFFER,
        total_len: 64,
        reason: PacketInReason::Action,
        table_id: 3,
        cookie: 7,
        r#match: Match::any().with(OxmField::InPort(10)),
        data: vec![0x01, 0x80, 0xc2, 0x00],
    };
    check(&raw, &Frame::new(0, Message::PacketIn(packet_in)));
}

#[test]
fn packet_out() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0d, 0x00, 0x2c, // OFPT_PACKET_OUT, length 44
        0x00, 0x00, 0x00, 0x0e, // xid 14
        0xff, 0xff, 0xff, 0xff, // buffer_id OFP_NO_BUFFER
        0xff, 0xff, 0xff, 0xfd, // in_port OFPP_CONTROLLER
        0x00, 0x10,             // actions_len 16
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[6]
        0x00, 0x00, 0x00, 0x10, // OFPAT_OUTPUT, length 16
        0x00, 0x00, 0x00, 0x0a, //   port 10
        0x00, 0x00,             //   max_len
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad
        0xde, 0xad, 0xbe, 0xef, // data
    ];
    let packet_out = PacketOut {
        buffer_id: OFP_NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![Action::output(10)],
        data: vec![0xde, 0xad, 0xbe, 0xef],
    };
    check(&raw, &Frame::new(14, Message::PacketOut(packet_out)));
    let mut bad = raw;
    bad[17] = 0x40; // actions_len 64: beyond the message
    assert!(Frame::parse(&bad).is_err());
}
