//! Constants and small value types shared by the messages.

/// The only wire version this crate speaks: OpenFlow 1.3.
pub const OFP_VERSION: u8 = 0x04;

/// Reserved port numbers (`ofp_port_no`).
pub mod port {
    /// Maximum number of physical and logical switch ports.
    pub const OFPP_MAX: u32 = 0xffff_ff00;
    /// Send the packet out the input port.
    pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
    /// Submit the packet to the first flow table.
    pub const OFPP_TABLE: u32 = 0xffff_fff9;
    /// Forward using non-OpenFlow pipeline.
    pub const OFPP_NORMAL: u32 = 0xffff_fffa;
    /// Flood using non-OpenFlow pipeline.
    pub const OFPP_FLOOD: u32 = 0xffff_fffb;
    /// All standard ports except the input port.
    pub const OFPP_ALL: u32 = 0xffff_fffc;
    /// Send to the controller.
    pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
    /// The local OpenFlow ("bridge") port.
    pub const OFPP_LOCAL: u32 = 0xffff_fffe;
    /// Wildcard port for flow deletes and stats requests.
    pub const OFPP_ANY: u32 = 0xffff_ffff;
}

/// Reserved group numbers.
pub mod group {
    /// Wildcard group for flow deletes and stats requests.
    pub const OFPG_ANY: u32 = 0xffff_ffff;
    /// All groups, for group deletes.
    pub const OFPG_ALL: u32 = 0xffff_fffc;
}

/// Reserved table numbers.
pub mod table {
    /// All tables, for deletes and stats requests.
    pub const OFPTT_ALL: u8 = 0xff;
}

/// `max_len` of an output to the controller that asks for the whole packet, unbuffered.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;
/// `buffer_id` meaning "no buffered packet".
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// Default `miss_send_len` of SET_CONFIG.
pub const OFPCML_DEFAULT_MISS_SEND_LEN: u16 = 128;

/// `ofp_port_config` bits (PORT_MOD `config`/`mask`, `ofp_port.config`).
pub mod port_config {
    /// Port is administratively down.
    pub const OFPPC_PORT_DOWN: u32 = 1 << 0;
    /// Drop all packets received by the port.
    pub const OFPPC_NO_RECV: u32 = 1 << 2;
    /// Drop packets forwarded to the port.
    pub const OFPPC_NO_FWD: u32 = 1 << 5;
    /// Do not send packet-in messages for the port.
    pub const OFPPC_NO_PACKET_IN: u32 = 1 << 6;
}

/// `ofp_port_state` bits (`ofp_port.state`).
pub mod port_state {
    /// No physical link present.
    pub const OFPPS_LINK_DOWN: u32 = 1 << 0;
    /// Port is blocked.
    pub const OFPPS_BLOCKED: u32 = 1 << 1;
    /// Live for fast failover groups.
    pub const OFPPS_LIVE: u32 = 1 << 2;
}

/// FLOW_MOD `flags` bits.
pub mod flow_mod_flags {
    /// Send FLOW_REMOVED when the flow expires or is deleted.
    pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
    /// Check for overlapping entries first.
    pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
    /// Reset flow packet and byte counts.
    pub const OFPFF_RESET_COUNTS: u16 = 1 << 2;
    /// Don't keep track of packet count.
    pub const OFPFF_NO_PKT_COUNTS: u16 = 1 << 3;
    /// Don't keep track of byte count.
    pub const OFPFF_NO_BYT_COUNTS: u16 = 1 << 4;
}

/// Multipart `flags`: more parts follow with the same xid.
pub const OFPMPF_REPLY_MORE: u16 = 1;
/// Multipart request `flags`: more request parts follow.
pub const OFPMPF_REQ_MORE: u16 = 1;

/// Bundle flags.
pub mod bundle_flags {
    /// Apply all messages or none.
    pub const OFPBF_ATOMIC: u16 = 1;
    /// Apply messages in the order they were added.
    pub const OFPBF_ORDERED: u16 = 2;
}

/// The ONF experimenter id, which carries bundles on OpenFlow 1.3.
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;
/// ONF exp_type of a bundle control message.
pub const ONF_ET_BUNDLE_CONTROL: u32 = 2300;
/// ONF exp_type of a bundle add message.
pub const ONF_ET_BUNDLE_ADD_MESSAGE: u32 = 2301;

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        Self(b)
    }
}

/// Declares an open code space: named values plus `Unknown(raw)`, with `From` both ways so
/// an unknown code survives parse → emit unchanged.
macro_rules! code_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $repr:ty {
        $($(#[$vmeta:meta])* $variant:ident = $value:expr),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this crate does not name, kept as sent.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $($value => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use code_enum;
