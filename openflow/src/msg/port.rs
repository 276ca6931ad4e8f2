//! Ports: the `ofp_port` description, PORT_STATUS and PORT_MOD.

use crate::Result;
use crate::types::{MacAddr, code_enum};
use crate::wire::{check_len, get_array, get_str, get_u32, put_str, put_u32};

mod field {
    pub(super) const PORT_NO: usize = 0;
    pub(super) const HW_ADDR: usize = 8;
    pub(super) const NAME: std::ops::Range<usize> = 16..32;
    pub(super) const CONFIG: usize = 32;
    pub(super) const STATE: usize = 36;
    pub(super) const CURR: usize = 40;
    pub(super) const ADVERTISED: usize = 44;
    pub(super) const SUPPORTED: usize = 48;
    pub(super) const PEER: usize = 52;
    pub(super) const CURR_SPEED: usize = 56;
    pub(super) const MAX_SPEED: usize = 60;
    pub(super) const PORT_LEN: usize = 64;

    pub(super) const STATUS_REASON: usize = 0;
    pub(super) const STATUS_PORT: usize = 8;
    pub(super) const STATUS_LEN: usize = 72;

    pub(super) const MOD_CONFIG: usize = 16;
    pub(super) const MOD_MASK: usize = 20;
    pub(super) const MOD_ADVERTISE: usize = 24;
    pub(super) const MOD_LEN: usize = 32;
}

/// `ofp_port`: one switch port (64 bytes), as in PORT_STATUS and PORT_DESC replies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Port {
    /// OpenFlow port number.
    pub port_no: u32,
    /// Current MAC address; PORT_MOD must repeat it.
    pub hw_addr: MacAddr,
    /// Interface name (at most 16 bytes on the wire, NUL padded).
    pub name: String,
    /// `OFPPC_*` bits.
    pub config: u32,
    /// `OFPPS_*` bits.
    pub state: u32,
    /// Current features (`OFPPF_*`).
    pub curr: u32,
    /// Advertised features.
    pub advertised: u32,
    /// Supported features.
    pub supported: u32,
    /// Features advertised by the peer.
    pub peer: u32,
    /// Current bit rate in kbps.
    pub curr_speed: u32,
    /// Maximum bit rate in kbps.
    pub max_speed: u32,
}

impl Port {
    /// Bytes on the wire.
    pub const LEN: usize = field::PORT_LEN;

    /// Decodes one `ofp_port` from the front of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::PORT_LEN, "port", "body")?;
        Ok(Self {
            port_no: get_u32(b, field::PORT_NO),
            hw_addr: MacAddr(get_array(b, field::HW_ADDR)),
            name: get_str(&b[field::NAME], "port", "name", field::NAME.start)?,
            config: get_u32(b, field::CONFIG),
            state: get_u32(b, field::STATE),
            curr: get_u32(b, field::CURR),
            advertised: get_u32(b, field::ADVERTISED),
            supported: get_u32(b, field::SUPPORTED),
            peer: get_u32(b, field::PEER),
            curr_speed: get_u32(b, field::CURR_SPEED),
            max_speed: get_u32(b, field::MAX_SPEED),
        })
    }

    /// Bytes on the wire.
    pub const fn buffer_len(&self) -> usize {
        field::PORT_LEN
    }

    /// Writes the 64 bytes.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::PORT_LEN].fill(0);
        put_u32(b, field::PORT_NO, self.port_no);
        b[field::HW_ADDR..field::HW_ADDR + 6].copy_from_slice(&self.hw_addr.0);
        put_str(&mut b[field::NAME], &self.name);
        put_u32(b, field::CONFIG, self.config);
        put_u32(b, field::STATE, self.state);
        put_u32(b, field::CURR, self.curr);
        put_u32(b, field::ADVERTISED, self.advertised);
        put_u32(b, field::SUPPORTED, self.supported);
        put_u32(b, field::PEER, self.peer);
        put_u32(b, field::CURR_SPEED, self.curr_speed);
        put_u32(b, field::MAX_SPEED, self.max_speed);
    }
}

code_enum! {
    /// Why a PORT_STATUS was sent.
    pub enum PortReason: u8 { Add = 0, Delete = 1, Modify = 2 }
}

/// OFPT_PORT_STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatus {
    /// Added, deleted or modified.
    pub reason: PortReason,
    /// The port as it is now.
    pub port: Port,
}

impl PortStatus {
    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::STATUS_LEN, "port_status", "body")?;
        let port = Port::parse(&b[field::STATUS_PORT..]).map_err(|e| e.at(field::STATUS_PORT))?;
        Ok(Self {
            reason: b[field::STATUS_REASON].into(),
            port,
        })
    }

    /// Bytes of the body.
    pub const fn buffer_len(&self) -> usize {
        field::STATUS_LEN
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::STATUS_PORT].fill(0);
        b[field::STATUS_REASON] = self.reason.into();
        self.port.emit(&mut b[field::STATUS_PORT..]);
    }
}

/// OFPT_PORT_MOD: change `config` bits under `mask` (e.g. `OFPPC_PORT_DOWN` for a link flap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMod {
    /// Port to change.
    pub port_no: u32,
    /// The port's current MAC; OVS refuses a mismatch with `OFPPMFC_BAD_HW_ADDR`.
    pub hw_addr: MacAddr,
    /// New `OFPPC_*` bits.
    pub config: u32,
    /// Which `config` bits to change.
    pub mask: u32,
    /// `OFPPF_*` features to advertise; 0 leaves them unchanged.
    pub advertise: u32,
}

impl PortMod {
    /// Sets (`down = true`) or clears `OFPPC_PORT_DOWN`, leaving other bits alone.
    pub const fn admin_down(port_no: u32, hw_addr: MacAddr, down: bool) -> Self {
        let bit = crate::types::port_config::OFPPC_PORT_DOWN;
        Self {
            port_no,
            hw_addr,
            config: if down { bit } else { 0 },
            mask: bit,
            advertise: 0,
        }
    }

    /// Decodes the body.
    pub fn parse(b: &[u8]) -> Result<Self> {
        check_len(b, field::MOD_LEN, "port_mod", "body")?;
        Ok(Self {
            port_no: get_u32(b, field::PORT_NO),
            hw_addr: MacAddr(get_array(b, field::HW_ADDR)),
            config: get_u32(b, field::MOD_CONFIG),
            mask: get_u32(b, field::MOD_MASK),
            advertise: get_u32(b, field::MOD_ADVERTISE),
        })
    }

    /// Bytes of the body.
    pub const fn buffer_len(&self) -> usize {
        field::MOD_LEN
    }

    /// Writes the body.
    pub fn emit(&self, b: &mut [u8]) {
        b[..field::MOD_LEN].fill(0);
        put_u32(b, field::PORT_NO, self.port_no);
        b[field::HW_ADDR..field::HW_ADDR + 6].copy_from_slice(&self.hw_addr.0);
        put_u32(b, field::MOD_CONFIG, self.config);
        put_u32(b, field::MOD_MASK, self.mask);
        put_u32(b, field::MOD_ADVERTISE, self.advertise);
    }
}
