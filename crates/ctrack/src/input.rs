//! Reading a capture into the packets a replay needs: record index, timestamp, the IP
//! bytes, and the side of the replay router the packet enters on.

use ctrack_capture::{Capture, CaptureError, Payload};
use ctrack_core::topology::{Cidr, Side, SideAssigner};
use std::path::Path;

/// One IP packet of a capture.
#[derive(Debug, Clone)]
pub struct InputPacket {
    /// Record number in the capture (non-IP records keep their numbers).
    pub index: u64,
    /// Capture timestamp, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The IP packet, from the IP header to the end of the captured frame.
    pub l3: Vec<u8>,
    /// Which router interface it enters on.
    pub side: Side,
    /// The VLAN ids of the frame, outermost first.
    pub vlans: Vec<u16>,
}

/// A loaded capture.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The IP packets.
    pub packets: Vec<InputPacket>,
    /// Records that were not IP (ARP, LLDP, unsupported link types).
    pub non_ip: u64,
    /// Total records.
    pub records: u64,
    /// The error that ended reading early (everything before it was loaded).
    pub error: Option<CaptureError>,
}

/// Load every IP packet of `path`, assigning sides with `client_nets`.
pub fn load(path: &Path, client_nets: &[Cidr]) -> Result<Loaded, CaptureError> {
    let cap = Capture::open(path)?;
    let mut sides = SideAssigner::new(client_nets.to_vec());
    let mut out = Loaded::default();
    let mut recs = cap.records();
    while let Some(r) = recs.next_record() {
        match r {
            Ok(rec) => {
                out.records += 1;
                match rec.payload {
                    Payload::Ip { l3, vlans, .. } => {
                        let side = sides.side(l3);
                        out.packets.push(InputPacket {
                            index: rec.index,
                            ts_ns: rec.ts_ns,
                            l3: l3.to_vec(),
                            side,
                            vlans: vlans.as_slice().to_vec(),
                        });
                    }
                    Payload::NonIp { .. } => out.non_ip += 1,
                }
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    Ok(out)
}
