package harness

import (
	"encoding/json"
	"errors"
	"fmt"
)

// parseIperf3 returns the receiver's goodput in Gbit/s from an iperf3 -J
// client report (end.sum_received.bits_per_second).
func parseIperf3(out []byte) (float64, error) {
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("parsing the iperf3 report: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.Bytes <= 0 {
		return 0, errors.New("iperf3 report: nothing received")
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}
