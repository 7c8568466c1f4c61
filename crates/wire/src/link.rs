//! One network interface as raw frames (a Linux packet socket): every frame that arrives on it is read,
//! and frames written go out of it as they are. Needs `CAP_NET_RAW` (root in a test's namespace).
//!
//! Frames carry the kernel's virtio-net header (`PACKET_VNET_HDR`): a large TCP segment that the sender
//! left for the network card to cut (segmentation offload, which veth devices do) is read whole with its
//! header and cut by the kernel when written on the other side, so nothing is too large to pass.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The largest frame read: a whole offloaded segment (64 KiB) with its headers.
pub const MAX_FRAME: usize = 65_536 + 256;

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): the socket does not see what is sent out of its interface.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `PACKET_VNET_HDR`: frames carry a virtio-net header.
const PACKET_VNET_HDR: libc::c_int = 15;

/// Why an interface cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No interface by that name (in this network namespace).
    #[error("no network interface {0:?} here")]
    NoSuchInterface(String),
    /// The system refused (usually: not root).
    #[error("{what} on {interface}: {source} (raw sockets need root or CAP_NET_RAW)")]
    System {
        /// What was being done.
        what: &'static str,
        /// The interface.
        interface: String,
        /// What the system said.
        source: io::Error,
    },
}

/// See the module documentation.
#[derive(Debug)]
pub struct RawLink {
    socket: OwnedFd,
    name: String,
}

impl RawLink {
    /// Opens the interface `name`, in promiscuous mode (frames for every address are read).
    pub fn open(name: &str) -> Result<RawLink, LinkError> {
        let system = |what| {
            let interface = name.to_owned();
            move |source| LinkError::System { what, interface, source }
        };
        let c_name = CString::new(name).map_err(|_| LinkError::NoSuchInterface(name.to_owned()))?;
        // SAFETY: a C string that lives across the call.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            return Err(LinkError::NoSuchInterface(name.to_owned()));
        }
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation; the descriptor is owned at once.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol)) };
        if fd < 0 {
            return Err(system("opening a packet socket")(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let link = RawLink { socket, name: name.to_owned() };
        link.set_option(PACKET_VNET_HDR, 1).map_err(system("asking for offload headers"))?;
        link.set_option(PACKET_IGNORE_OUTGOING, 1).map_err(system("ignoring outgoing frames"))?;
        // SAFETY: a zeroed sockaddr_ll is valid; the fields set are its documented ones.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index as i32;
        // SAFETY: the address is a sockaddr_ll of the size given.
        let bound = unsafe {
            libc::bind(
                link.socket.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(system("binding to the interface")(io::Error::last_os_error()));
        }
        // SAFETY: a zeroed packet_mreq is valid; the fields set are its documented ones.
        let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
        membership.mr_ifindex = index as i32;
        membership.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: the option value is a packet_mreq of the size given.
        let joined = unsafe {
            libc::setsockopt(
                link.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&membership as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if joined != 0 {
            return Err(system("listening to every address")(io::Error::last_os_error()));
        }
        Ok(link)
    }

    fn set_option(&self, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: the option value is a c_int of the size given.
        let result = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next frame and reads it into `buffer`; returns its length, or `None` for a frame
    /// longer than the buffer (dropped: a cut frame must not go on).
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: the kernel writes at most `buffer.len()` bytes into the buffer.
            let read = unsafe {
                libc::recv(self.socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_TRUNC)
            };
            if read >= 0 {
                let length = read as usize;
                return Ok((length <= buffer.len()).then_some(length));
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Sends one frame (with its offload header) out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the kernel reads `frame.len()` bytes from the frame.
        let sent = unsafe { libc::send(self.socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}
