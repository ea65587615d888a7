// Tests of the IBM/sarama client against one `fjord dev` node shared by the package.
package saramatest

import (
	"log"
	"os"
	"testing"

	"fjord.dev/tests/go/harness"
	"github.com/IBM/sarama"
)

var node *harness.Node

func TestMain(m *testing.M) {
	// Sarama's own log is quiet unless asked for: FJORD_GO_SARAMA_LOG=1.
	if os.Getenv("FJORD_GO_SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	}
	os.Exit(harness.Main(m, "sarama", &node))
}
