// Package dataplane wires mflow's receive path and runs it.
//
// The core is the Engine, one per uplink queue:
//
//	steer.Source (AF_XDP socket, memio.Source)
//	  └─ dispatcher goroutine (steer.Dispatcher): Read a batch, stamp its sequence number,
//	     pick a worker by policy; batches come from a fixed batch.Pool (bounded memory)
//	       └─ workers[0..N): run the Stages (DecapStage, …) on the batch in place; dropped
//	          frames are counted by reason and moved behind the delivered ones; the batch
//	          moves on even when empty
//	            └─ output goroutine: the merger (reorder.Merger) releases batches strictly
//	               in sequence order (steer.Microflow), or a fan-in (steer.Flow)
//	                 └─ Sink.Write(batch), then Source.Release(all frames), batch back to the pool
//
// steer.Single runs everything on the dispatcher goroutine; steer.Pipeline
// decaps on the dispatcher goroutine and writes on the output goroutine.
// Every frame read ends delivered, dropped with a reason, or in flight:
// Stats.Received == Delivered + DroppedTotal() + InFlight, and after Run
// returns InFlight is zero and every frame is back with its source.
//
// Goroutines may be pinned to CPUs (Config.Affinity). The in-memory source
// and sink of package dataplane/memio let all of this run without root.
package dataplane
