//! HELLO, ERROR, ECHO, FEATURES, GET/SET_CONFIG, BARRIER and ROLE fixtures.

mod support;

use ovswire_openflow::msg::{
    BadActionCode, ControllerRole, FeaturesReply, FlowModFailedCode, HelloElement, HelloFailedCode,
    Role, SwitchConfig,
};
use ovswire_openflow::msg::{ErrorKind, ErrorMsg, Hello};
use ovswire_openflow::{Frame, Message};
use support::{check, truncations_fail};

#[test]
fn hello_with_version_bitmap() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x00, 0x00, 0x10, // version 1.3, OFPT_HELLO, length 16
        0x00, 0x00, 0x00, 0x01, // xid 1
        0x00, 0x01, 0x00, 0x08, // element OFPHET_VERSIONBITMAP, length 8 (excluding padding)
        0x00, 0x00, 0x00, 0x10, // bitmap: bit 4 = OpenFlow 1.3
    ];
    let hello = Hello::with_versions(&[4]);
    check(&raw, &Frame::new(1, Message::Hello(hello.clone())));
    assert!(hello.supports(4, 4));
    assert!(!hello.supports(4, 5));
}

#[test]
fn hello_from_newer_switch_keeps_unknown_elements() {
    #[rustfmt::skip]
    let raw = [
        0x06, 0x00, 0x00, 0x20, // version 1.5, OFPT_HELLO, length 32
        0x00, 0x00, 0x00, 0x2a, // xid 42
        0x00, 0x01, 0x00, 0x08, // OFPHET_VERSIONBITMAP, length 8
        0x00, 0x00, 0x00, 0x72, // bitmap: 1.0 (bit 1), 1.3, 1.4, 1.5
        0x00, 0x09, 0x00, 0x0d, // unknown element 9, length 13 (excluding padding)
        0x61, 0x62, 0x63, 0x64, // body "abcd"
        0x65, 0x66, 0x67, 0x68, // body "efgh"
        0x69, 0x00, 0x00, 0x00, // body "i", 3 bytes of padding to 8
    ];
    let hello = Hello {
        elements: vec![
            HelloElement::VersionBitmap(vec![0x72]),
            HelloElement::Unknown {
                kind: 9,
                body: b"abcdefghi".to_vec(),
            },
        ],
    };
    let frame = Frame {
        version: 6,
        xid: 42,
        message: Message::Hello(hello.clone()),
    };
    check(&raw, &frame);
    assert!(hello.supports(6, 4), "1.3 is in the bitmap");
    assert!(!hello.supports(6, 2), "1.1 is not");
}

#[test]
fn hello_without_elements_offers_header_version() {
    let raw = [0x05, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x07]; // 1.4 HELLO, xid 7, no elements
    let frame = Frame {
        version: 5,
        xid: 7,
        message: Message::Hello(Hello::default()),
    };
    check(&raw, &frame);
    // The spec: without a bitmap, the header version is the highest the peer supports.
    assert!(Hello::default().supports(5, 4));
    assert!(!Hello::default().supports(1, 4));
}

#[test]
fn error_flow_mod_failed_keeps_offending_bytes() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x01, 0x00, 0x14, // version, OFPT_ERROR, length 20
        0x00, 0x00, 0x00, 0x09, // xid 9 (the failed request's)
        0x00, 0x05, 0x00, 0x02, // type OFPET_FLOW_MOD_FAILED, code OFPFMFC_BAD_TABLE_ID
        0x04, 0x0e, 0x00, 0x50, // data: the offending header (FLOW_MOD, length 80)...
        0x00, 0x00, 0x00, 0x09, // ...with its xid 9
    ];
    let error = ErrorMsg {
        kind: ErrorKind::FlowModFailed(FlowModFailedCode::BadTableId),
        data: vec![0x04, 0x0e, 0x00, 0x50, 0, 0, 0, 9],
    };
    assert_eq!(error.offending_xid(), Some(9));
    check(&raw, &Frame::new(9, Message::Error(error)));
}

#[test]
fn error_codes_decode_into_enums_and_unknowns_survive() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x01, 0x00, 0x0c, // OFPT_ERROR, length 12
        0x00, 0x00, 0x00, 0x03, // xid 3
        0x00, 0x02, 0x00, 0x04, // OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT
    ];
    let frame = Frame::new(
        3,
        Message::Error(ErrorMsg::new(ErrorKind::BadAction(
            BadActionCode::BadOutPort,
        ))),
    );
    check(&raw, &frame);

    #[rustfmt::skip]
    let raw = [
        0x04, 0x01, 0x00, 0x0c, // OFPT_ERROR, length 12
        0x00, 0x00, 0x00, 0x03, // xid 3
        0x00, 0x02, 0x01, 0x00, // OFPET_BAD_ACTION, code 256 (not in the spec)
    ];
    let kind = ErrorKind::BadAction(BadActionCode::Unknown(256));
    check(&raw, &Frame::new(3, Message::Error(ErrorMsg::new(kind))));

    #[rustfmt::skip]
    let raw = [
        0x04, 0x01, 0x00, 0x0c, // OFPT_ERROR, length 12
        0x00, 0x00, 0x00, 0x03, // xid 3
        0x00, 0x63, 0x00, 0x01, // type 99 (unknown), code 1
    ];
    let kind = ErrorKind::Unknown {
        err_type: 99,
        code: 1,
    };
    check(&raw, &Frame::new(3, Message::Error(ErrorMsg::new(kind))));
}

#[test]
fn error_hello_failed() {
    #[rustfmt::skip]
    let raw = [
        0x01, 0x01, 0x00, 0x0f, // version 1.0 (a peer that only speaks 1.0), OFPT_ERROR, length 15
        0x00, 0x00, 0x00, 0x00, // xid 0
        0x00, 0x00, 0x00, 0x00, // OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE
        0x62, 0x61, 0x64,       // data: ASCII "bad"
    ];
    let error = ErrorMsg {
        kind: ErrorKind::HelloFailed(HelloFailedCode::Incompatible),
        data: b"bad".to_vec(),
    };
    check(
        &raw,
        &Frame {
            version: 1,
            xid: 0,
            message: Message::Error(error),
        },
    );
}

#[test]
fn error_experimenter() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x01, 0x00, 0x14, // OFPT_ERROR, length 20
        0x00, 0x00, 0x00, 0x05, // xid 5
        0xff, 0xff, 0x08, 0xfc, // OFPET_EXPERIMENTER, exp_type 2300
        0x4f, 0x4e, 0x46, 0x00, // experimenter ONF
        0xde, 0xad, 0xbe, 0xef, // data
    ];
    let error = ErrorMsg {
        kind: ErrorKind::Experimenter {
            exp_type: 2300,
            experimenter: 0x4f4e_4600,
        },
        data: vec![0xde, 0xad, 0xbe, 0xef],
    };
    check(&raw, &Frame::new(5, Message::Error(error)));
}

#[test]
fn echo_request_and_reply() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x02, 0x00, 0x0b, // OFPT_ECHO_REQUEST, length 11
        0x00, 0x00, 0x00, 0x11, // xid 17
        0x70, 0x69, 0x6e,       // arbitrary data "pin"
    ];
    check(&raw, &Frame::new(17, Message::EchoRequest(b"pin".to_vec())));
    let raw = [0x04, 0x03, 0x00, 0x08, 0x00, 0x00, 0x00, 0x11]; // OFPT_ECHO_REPLY, xid 17, no data
    check(&raw, &Frame::new(17, Message::EchoReply(Vec::new())));
}

#[test]
fn features_request_and_reply() {
    let raw = [0x04, 0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x02]; // OFPT_FEATURES_REQUEST, xid 2
    check(&raw, &Frame::new(2, Message::FeaturesRequest));
    #[rustfmt::skip]
    let raw = [
        0x04, 0x06, 0x00, 0x20, // OFPT_FEATURES_REPLY, length 32
        0x00, 0x00, 0x00, 0x02, // xid 2
        0x00, 0x00, 0x00, 0x00, // datapath_id (high)
        0x00, 0x00, 0x0a, 0xbc, // datapath_id (low)
        0x00, 0x00, 0x01, 0x00, // n_buffers 256
        0xfe,                   // n_tables 254
        0x00,                   // auxiliary_id 0
        0x00, 0x00,             // pad
        0x00, 0x00, 0x00, 0x4f, // capabilities
        0x00, 0x00, 0x00, 0x00, // reserved
    ];
    let features = FeaturesReply {
        datapath_id: 0xabc,
        n_buffers: 256,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0x4f,
        reserved: 0,
    };
    check(&raw, &Frame::new(2, Message::FeaturesReply(features)));
    truncations_fail(&raw);
}

#[test]
fn get_and_set_config() {
    let raw = [0x04, 0x07, 0x00, 0x08, 0x00, 0x00, 0x00, 0x04]; // OFPT_GET_CONFIG_REQUEST, xid 4
    check(&raw, &Frame::new(4, Message::GetConfigRequest));
    #[rustfmt::skip]
    let raw = [
        0x04, 0x09, 0x00, 0x0c, // OFPT_SET_CONFIG, length 12
        0x00, 0x00, 0x00, 0x04, // xid 4
        0x00, 0x00,             // flags OFPC_FRAG_NORMAL
        0x00, 0x80,             // miss_send_len 128
    ];
    check(
        &raw,
        &Frame::new(
            4,
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
        ),
    );
    truncations_fail(&raw);
    #[rustfmt::skip]
    let raw = [
        0x04, 0x08, 0x00, 0x0c, // OFPT_GET_CONFIG_REPLY, length 12
        0x00, 0x00, 0x00, 0x04, // xid 4
        0x00, 0x01,             // flags OFPC_FRAG_DROP
        0xff, 0xff,             // miss_send_len OFPCML_NO_BUFFER
    ];
    check(
        &raw,
        &Frame::new(
            4,
            Message::GetConfigReply(SwitchConfig {
                flags: 1,
                miss_send_len: 0xffff,
            }),
        ),
    );
}

#[test]
fn barrier_request_and_reply() {
    let raw = [0x04, 0x14, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00]; // OFPT_BARRIER_REQUEST, xid 256
    check(&raw, &Frame::new(256, Message::BarrierRequest));
    let raw = [0x04, 0x15, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00]; // OFPT_BARRIER_REPLY, xid 256
    check(&raw, &Frame::new(256, Message::BarrierReply));
}

#[test]
fn role_request_and_reply() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x18, 0x00, 0x18, // OFPT_ROLE_REQUEST, length 24
        0x00, 0x00, 0x00, 0x06, // xid 6
        0x00, 0x00, 0x00, 0x02, // role OFPCR_ROLE_MASTER
        0x00, 0x00, 0x00, 0x00, // pad
        0x00, 0x00, 0x00, 0x00, // generation_id (high)
        0x00, 0x00, 0x00, 0x07, // generation_id (low)
    ];
    let role = Role {
        role: ControllerRole::Master,
        generation_id: 7,
    };
    check(&raw, &Frame::new(6, Message::RoleRequest(role)));
    truncations_fail(&raw);
    let mut reply = raw;
    reply[1] = 0x19; // OFPT_ROLE_REPLY
    check(&reply, &Frame::new(6, Message::RoleReply(role)));
}

#[test]
fn unknown_message_type_round_trips() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x1d, 0x00, 0x0d, // type 29 (METER_MOD, not decoded here), length 13
        0x00, 0x00, 0x00, 0x08, // xid 8
        0x01, 0x02, 0x03, 0x04, 0x05, // body kept raw
    ];
    check(
        &raw,
        &Frame::new(
            8,
            Message::Unknown {
                msg_type: 29,
                body: vec![1, 2, 3, 4, 5],
            },
        ),
    );
}

#[test]
fn header_length_is_checked() {
    // The spec: "length ... including this header"; a length below 8 is malformed.
    assert!(Frame::parse(&[0x04, 0x00, 0x00, 0x07, 0, 0, 0, 1]).is_err());
    // A length beyond the buffer is truncation, not a panic.
    assert!(Frame::parse(&[0x04, 0x00, 0x00, 0x10, 0, 0, 0, 1]).is_err());
}
