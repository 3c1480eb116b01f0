package testbed

// VethOpts configures both ends of a veth pair made by [Veth]. The zero
// value gives the kernel's defaults (MTU 1500, one queue each way, offloads
// on).
type VethOpts struct {
	// MTU of both ends; 0 keeps the kernel default (1500).
	MTU int
	// RxQueues and TxQueues set the number of queues of both ends; 0 keeps
	// the default (1).
	RxQueues, TxQueues int
	// NoOffloads turns TSO, GSO, GRO and TX checksumming off on both ends (ethtool ioctl), so
	// that the pair carries MTU-sized frames like a NIC's wire.
	NoOffloads bool
}

// Offloads says which segmentation offloads a link should have on; the zero
// value turns all four off.
type Offloads struct {
	TSO, GSO, GRO bool
	// TxCsum is transmit checksum offload. A veth with it on passes
	// frames with a partial checksum (only the pseudo-header summed) to
	// the peer; XDP and AF_XDP then see that, unlike on a real NIC, whose
	// hardware fills the checksum in. The wire turns it off so that its
	// frames carry complete checksums.
	TxCsum bool
}
