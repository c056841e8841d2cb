package e2e

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Every bound on how long a test waits for the server (to start, answer,
// log, exit) is wait(d), d being ample for a normal build on an idle
// machine. Under the race detector the server runs several times slower,
// so the bounds grow by raceWaitScale; USERSD_E2E_WAIT_SCALE sets the
// factor outright (a slow or loaded machine). Durations that are part of
// what a test checks (a contract's bound, a token's lifetime, a server
// timeout) are not waits and stay as they are.

// raceWaitScale is the factor when USERSD_E2E_RACE builds the server with
// -race.
const raceWaitScale = 3

var waitScale, waitScaleErr = loadWaitScale()

// wait scales a bound on how long a test waits for the server.
func wait(d time.Duration) time.Duration { return time.Duration(float64(d) * waitScale) }

func loadWaitScale() (float64, error) {
	if v := os.Getenv("USERSD_E2E_WAIT_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 100) {
			return 1, fmt.Errorf("USERSD_E2E_WAIT_SCALE=%q: want a number above 0, at most 100", v)
		}
		return f, nil
	}
	if os.Getenv("USERSD_E2E_RACE") != "" {
		return raceWaitScale, nil
	}
	return 1, nil
}
