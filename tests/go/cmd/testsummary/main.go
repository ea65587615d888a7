// Command testsummary reads `go test -json` events on stdin, prints each package's output when
// that package ends (so parallel packages don't interleave), and ends with one line `go: N passed, N failed` (", N skipped" when some were).
// Counted are leaf tests (a test with subtests counts through its subtests); a package that
// failed outside any test (build error, TestMain/harness failure, timeout panic) counts as
// one failure, and so does a test that started but never finished. Exit status 1 when
// anything failed or nothing ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	results := map[string]string{} // "pkg test" -> last action (run, pass, fail, skip)
	pkgFailed := map[string]bool{}
	pending := map[string]*strings.Builder{} // output of packages still running
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		var e event
		if err := json.Unmarshal(in.Bytes(), &e); err != nil {
			fmt.Println(in.Text()) // not an event: build output and the like
			continue
		}
		switch {
		case e.Action == "output":
			if pending[e.Package] == nil {
				pending[e.Package] = &strings.Builder{}
			}
			pending[e.Package].WriteString(e.Output)
		case e.Test != "" && (e.Action == "run" || e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			results[e.Package+" "+e.Test] = e.Action
		case e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			pkgFailed[e.Package] = e.Action == "fail"
			if b := pending[e.Package]; b != nil {
				fmt.Print(b.String())
				delete(pending, e.Package)
			}
		}
	}
	for _, b := range pending { // packages that never ended (killed)
		fmt.Print(b.String())
	}

	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parents := map[string]bool{} // tests with subtests
	for _, k := range keys {
		for i := strings.LastIndex(k, "/"); i > 0; i = strings.LastIndex(k[:i], "/") {
			parents[k[:i]] = true
		}
	}
	passed, failed, skipped := 0, 0, 0
	failedIn := map[string]bool{}
	var failures []string
	for _, k := range keys {
		if parents[k] {
			continue
		}
		switch results[k] {
		case "pass":
			passed++
		case "skip":
			skipped++
		default: // fail, or run without an end
			failed++
			failures = append(failures, k)
			failedIn[strings.SplitN(k, " ", 2)[0]] = true
		}
	}
	for pkg, bad := range pkgFailed {
		if bad && !failedIn[pkg] {
			failed++
			failures = append(failures, pkg+" (package failed outside any test)")
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		fmt.Println("FAILED:", f)
	}
	line := fmt.Sprintf("go: %d passed, %d failed", passed, failed)
	if skipped > 0 {
		line += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Println(line)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}
