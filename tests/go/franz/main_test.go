// Tests of the franz-go client (kgo, kadm) against one `fjord dev` node shared by the package.
package franz

import (
	"os"
	"testing"

	"fjord.dev/tests/go/harness"
)

var node *harness.Node

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, "franz", &node))
}
