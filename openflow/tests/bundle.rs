//! Bundle fixtures: the ONF experimenter form (OpenFlow 1.3) and the OpenFlow 1.4 form.

mod support;

use ovswire_openflow::msg::{BundleAdd, BundleControl, BundleControlType, Experimenter};
use ovswire_openflow::types::bundle_flags::{OFPBF_ATOMIC, OFPBF_ORDERED};
use ovswire_openflow::{Frame, MacAddr, Message, PortMod};
use support::check;

#[test]
fn onf_bundle_open_request() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x04, 0x00, 0x18, // OFPT_EXPERIMENTER, length 24
        0x00, 0x00, 0x00, 0x30, // xid 48
        0x4f, 0x4e, 0x46, 0x00, // experimenter ONF
        0x00, 0x00, 0x08, 0xfc, // exp_type 2300 (bundle control)
        0x00, 0x00, 0x00, 0x07, // bundle_id 7
        0x00, 0x00,             // type OFPBCT_OPEN_REQUEST
        0x00, 0x01,             // flags OFPBF_ATOMIC
    ];
    let ctl = BundleControl::new(7, BundleControlType::OpenRequest, OFPBF_ATOMIC);
    check(&raw, &Frame::new(48, Message::OnfBundleControl(ctl)));
}

#[test]
fn onf_bundle_commit_reply_with_properties() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x04, 0x00, 0x20, // OFPT_EXPERIMENTER, length 32
        0x00, 0x00, 0x00, 0x31, // xid 49
        0x4f, 0x4e, 0x46, 0x00, // experimenter ONF
        0x00, 0x00, 0x08, 0xfc, // exp_type 2300
        0x00, 0x00, 0x00, 0x07, // bundle_id 7
        0x00, 0x05,             // type OFPBCT_COMMIT_REPLY
        0x00, 0x03,             // flags ATOMIC | ORDERED
        0xff, 0xff, 0x00, 0x08, // a property, kept raw
        0x00, 0x00, 0x00, 0x01, //   body
    ];
    let ctl = BundleControl {
        bundle_id: 7,
        kind: BundleControlType::CommitReply,
        flags: OFPBF_ATOMIC | OFPBF_ORDERED,
        properties: vec![0xff, 0xff, 0, 8, 0, 0, 0, 1],
    };
    check(&raw, &Frame::new(49, Message::OnfBundleControl(ctl)));
}

#[test]
fn onf_bundle_add_port_mod() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x04, 0x00, 0x40, // OFPT_EXPERIMENTER, length 64
        0x00, 0x00, 0x00, 0x32, // xid 50
        0x4f, 0x4e, 0x46, 0x00, // experimenter ONF
        0x00, 0x00, 0x08, 0xfd, // exp_type 2301 (bundle add)
        0x00, 0x00, 0x00, 0x07, // bundle_id 7
        0x00, 0x00,             // pad
        0x00, 0x01,             // flags OFPBF_ATOMIC
        0x04, 0x10, 0x00, 0x28, // embedded OFPT_PORT_MOD, length 40
        0x00, 0x00, 0x00, 0x32, // embedded xid 50: the spec says it MUST equal the outer xid
        0x00, 0x00, 0x00, 0x0a, // port_no 10
        0x00, 0x00, 0x00, 0x00, // pad
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // hw_addr
        0x00, 0x00,             // pad
        0x00, 0x00, 0x00, 0x01, // config OFPPC_PORT_DOWN
        0x00, 0x00, 0x00, 0x01, // mask
        0x00, 0x00, 0x00, 0x00, // advertise
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    let port_mod = PortMod::admin_down(10, MacAddr([2, 0, 0, 0, 0, 10]), true);
    let add = BundleAdd::new(7, OFPBF_ATOMIC, 50, Message::PortMod(port_mod));
    let frame = Frame::new(50, Message::OnfBundleAdd(add));
    check(&raw, &frame);
}

#[test]
fn of14_bundle_control_and_add() {
    #[rustfmt::skip]
    let raw = [
        0x05, 0x21, 0x00, 0x10, // version 1.4, OFPT_BUNDLE_CONTROL (33), length 16
        0x00, 0x00, 0x00, 0x33, // xid 51
        0x00, 0x00, 0x00, 0x08, // bundle_id 8
        0x00, 0x06,             // type OFPBCT_DISCARD_REQUEST
        0x00, 0x00,             // flags
    ];
    let ctl = BundleControl::new(8, BundleControlType::DiscardRequest, 0);
    // A 1.4 frame other than HELLO/ERROR is kept raw; the bundle body decodes on 1.3 frames.
    let unknown = Frame {
        version: 5,
        xid: 51,
        message: Message::Unknown {
            msg_type: 33,
            body: raw[8..].to_vec(),
        },
    };
    check(&raw, &unknown);
    let mut v4 = raw;
    v4[0] = 0x04;
    check(&v4, &Frame::new(51, Message::BundleControl(ctl)));

    #[rustfmt::skip]
    let raw = [
        0x04, 0x22, 0x00, 0x18, // OFPT_BUNDLE_ADD_MESSAGE (34), length 24
        0x00, 0x00, 0x00, 0x34, // xid 52
        0x00, 0x00, 0x00, 0x08, // bundle_id 8
        0x00, 0x00,             // pad
        0x00, 0x01,             // flags OFPBF_ATOMIC
        0x04, 0x14, 0x00, 0x08, // embedded OFPT_BARRIER_REQUEST, length 8
        0x00, 0x00, 0x00, 0x34, // embedded xid 52
    ];
    let add = BundleAdd::new(8, OFPBF_ATOMIC, 52, Message::BarrierRequest);
    check(&raw, &Frame::new(52, Message::BundleAdd(add)));
}

#[test]
fn nested_bundle_add_is_not_decoded_recursively() {
    let inner = Frame::new(
        1,
        Message::OnfBundleAdd(BundleAdd::new(1, 1, 1, Message::BarrierRequest)),
    );
    let outer = Frame::new(
        1,
        Message::OnfBundleAdd(BundleAdd {
            bundle_id: 1,
            flags: 1,
            message: Box::new(inner),
            trailer: vec![],
        }),
    );
    let raw = outer.to_vec().unwrap();
    let parsed = Frame::parse(&raw).unwrap();
    let Message::OnfBundleAdd(add) = parsed.message else {
        panic!("not a bundle add")
    };
    assert!(
        matches!(add.message.message, Message::Experimenter(_)),
        "inner add kept raw"
    );
    support::roundtrip(&raw);
}

#[test]
fn other_experimenter_messages_round_trip() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x04, 0x00, 0x13, // OFPT_EXPERIMENTER, length 19
        0x00, 0x00, 0x00, 0x35, // xid 53
        0x00, 0x00, 0x23, 0x20, // experimenter Nicira
        0x00, 0x00, 0x00, 0x10, // exp_type 16
        0x01, 0x02, 0x03,       // data
    ];
    let exp = Experimenter {
        experimenter: 0x2320,
        exp_type: 16,
        data: vec![1, 2, 3],
    };
    check(&raw, &Frame::new(53, Message::Experimenter(exp)));
}
