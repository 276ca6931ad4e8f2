//! List bridges with their ports and OpenFlow port numbers, the way `ovs-vsctl show` would.
//!
//! ```text
//! cargo run -p ovswire-ovsdb --example list_bridges -- unix:/var/run/openvswitch/db.sock
//! ```

use std::collections::HashMap;

use ovswire_ovsdb::{Client, Operation, Uuid};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unix:/var/run/openvswitch/db.sock".into());
    let client = Client::connect(&addr).await?;
    // One transaction reads a consistent snapshot of all three tables.
    let results = client
        .transact("Open_vSwitch")
        .op(Operation::select_columns(
            "Bridge",
            vec![],
            ["name", "datapath_type", "ports"],
        ))
        .op(Operation::select_columns(
            "Port",
            vec![],
            ["_uuid", "name", "interfaces"],
        ))
        .op(Operation::select_columns(
            "Interface",
            vec![],
            ["_uuid", "type", "ofport"],
        ))
        .execute()
        .await?;
    let ifaces: HashMap<Uuid, _> = results[2]
        .rows()?
        .iter()
        .map(|row| Ok((row.uuid()?, row.clone())))
        .collect::<ovswire_ovsdb::Result<_>>()?;
    let ports: HashMap<Uuid, _> = results[1]
        .rows()?
        .iter()
        .map(|row| Ok((row.uuid()?, row.clone())))
        .collect::<ovswire_ovsdb::Result<_>>()?;

    for bridge in results[0].rows()? {
        println!(
            "bridge {} ({})",
            bridge.get("name")?.as_str()?,
            bridge.get("datapath_type")?.as_str()?
        );
        for port_uuid in bridge.get("ports")?.uuids()? {
            let Some(port) = ports.get(&port_uuid) else {
                continue;
            };
            for iface in port
                .get("interfaces")?
                .uuids()?
                .iter()
                .filter_map(|u| ifaces.get(u))
            {
                let ofport = iface.get("ofport")?.optional_i64()?;
                let kind = iface.get("type")?.as_str()?;
                let ofport = ofport.map_or_else(|| "-".to_owned(), |n| n.to_string());
                println!(
                    "  port {:<16} type {:<10} ofport {ofport}",
                    port.get("name")?.as_str()?,
                    kind
                );
            }
        }
    }
    Ok(())
}
