//! PORT_STATUS (with `ofp_port`) and PORT_MOD fixtures.

mod support;

use ovswire_openflow::msg::{Port, PortReason, PortStatus};
use ovswire_openflow::types::port_config::OFPPC_PORT_DOWN;
use ovswire_openflow::types::port_state::{OFPPS_LINK_DOWN, OFPPS_LIVE};
use ovswire_openflow::{Frame, MacAddr, Message, PortMod};
use support::{check, truncations_fail};

fn port_a1() -> Port {
    Port {
        port_no: 10,
        hw_addr: MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]),
        name: "a1".into(),
        config: OFPPC_PORT_DOWN,
        state: OFPPS_LINK_DOWN,
        curr: 0x2840,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

#[test]
fn port_status_modify() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x0c, 0x00, 0x50, // OFPT_PORT_STATUS, length 80
        0x00, 0x00, 0x00, 0x00, // xid 0
        0x02,                   // reason OFPPR_MODIFY
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pad[7]
        0x00, 0x00, 0x00, 0x0a, // port_no 10
        0x00, 0x00, 0x00, 0x00, // pad
        0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, // hw_addr
        0x00, 0x00,             // pad
        b'a', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // name, NUL padded to 16
        0x00, 0x00, 0x00, 0x01, // config OFPPC_PORT_DOWN
        0x00, 0x00, 0x00, 0x01, // state OFPPS_LINK_DOWN
        0x00, 0x00, 0x28, 0x40, // curr: 10GB_FD | COPPER
        0x00, 0x00, 0x00, 0x00, // advertised
        0x00, 0x00, 0x00, 0x00, // supported
        0x00, 0x00, 0x00, 0x00, // peer
        0x00, 0x98, 0x96, 0x80, // curr_speed 10 Gbit/s in kbps
        0x00, 0x00, 0x00, 0x00, // max_speed
    ];
    let status = PortStatus {
        reason: PortReason::Modify,
        port: port_a1(),
    };
    check(&raw, &Frame::new(0, Message::PortStatus(status)));
    truncations_fail(&raw);
}

#[test]
fn port_name_of_16_bytes_and_non_utf8() {
    let mut port = port_a1();
    port.name = "abcdefghijklmnop".into();
    port.state = OFPPS_LIVE;
    let frame = Frame::new(
        0,
        Message::PortStatus(PortStatus {
            reason: PortReason::Add,
            port,
        }),
    );
    let raw = frame.to_vec().unwrap();
    check(&raw, &frame);
    let mut bad = raw.clone();
    bad[8 + 8 + 16] = 0xff; // the name's first byte: not UTF-8
    assert!(Frame::parse(&bad).is_err());
}

#[test]
fn port_mod_admin_down() {
    #[rustfmt::skip]
    let raw = [
        0x04, 0x10, 0x00, 0x28, // OFPT_PORT_MOD, length 40
        0x00, 0x00, 0x00, 0x0d, // xid 13
        0x00, 0x00, 0x00, 0x0a, // port_no 10
        0x00, 0x00, 0x00, 0x00, // pad
        0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, // hw_addr: must be the port's current MAC
        0x00, 0x00,             // pad
        0x00, 0x00, 0x00, 0x01, // config OFPPC_PORT_DOWN
        0x00, 0x00, 0x00, 0x01, // mask OFPPC_PORT_DOWN
        0x00, 0x00, 0x00, 0x00, // advertise: unchanged
        0x00, 0x00, 0x00, 0x00, // pad
    ];
    let port_mod = PortMod::admin_down(10, MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]), true);
    check(&raw, &Frame::new(13, Message::PortMod(port_mod)));
    truncations_fail(&raw);
    let up = PortMod::admin_down(10, port_mod.hw_addr, false);
    assert_eq!((up.config, up.mask), (0, OFPPC_PORT_DOWN));
}
