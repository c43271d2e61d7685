package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds the real eprostream binary once per test process (without
// -race: the processes it runs are the product, not the test) and returns
// its path. Tests that kill or run several processes start it.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(here), "..", "..")
		dir, err := os.MkdirTemp("", "eprostream-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "eprostream")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/eprostream")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("devstack: go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}
