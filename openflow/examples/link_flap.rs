//! Takes a port administratively down (or up) with one PORT_MOD, the way ovswire flaps a link.
//!
//! `cargo run -p ovswire-openflow --example link_flap -- /var/run/openvswitch/ovsbr0.mgmt 10 down`

use ovswire_openflow::{PortMod, conn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: link_flap <bridge.mgmt socket> <ofport> up|down";
    let path = args.next().ok_or(usage)?;
    let port_no: u32 = args.next().ok_or(usage)?.parse()?;
    let down = match args.next().as_deref() {
        Some("down") => true,
        Some("up") => false,
        _ => return Err(usage.into()),
    };
    let (handle, _events) = conn::connect(path.as_str()).await?;
    // PORT_MOD must carry the port's current MAC, so read it first.
    let port = handle
        .port_desc()
        .await?
        .into_iter()
        .find(|p| p.port_no == port_no)
        .ok_or("no such port")?;
    handle
        .port_mod(PortMod::admin_down(port_no, port.hw_addr, down))
        .await?;
    println!(
        "{} ({}) is now administratively {}",
        port.name,
        port_no,
        if down { "down" } else { "up" }
    );
    Ok(())
}
