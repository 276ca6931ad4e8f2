//! Prints every flow of a bridge, like `ovs-ofctl -O OpenFlow13 dump-flows`.
//!
//! `cargo run -p ovswire-openflow --example dump_flows -- /var/run/openvswitch/ovsbr0.mgmt`

use ovswire_openflow::conn;
use ovswire_openflow::msg::FlowStatsRequest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: dump_flows <bridge.mgmt socket>")?;
    let (handle, _events) = conn::connect(path.as_str()).await?;
    println!("datapath {:016x}", handle.features().datapath_id);
    for flow in handle.flow_stats(FlowStatsRequest::default()).await? {
        println!(
            "table={} priority={} cookie={:#x} packets={} match={:?} instructions={:?}",
            flow.table_id,
            flow.priority,
            flow.cookie,
            flow.packet_count,
            flow.r#match.fields,
            flow.instructions
        );
    }
    Ok(())
}
