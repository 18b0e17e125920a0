// Command install-chains installs the chain clients the end-to-end tests
// run, as the tests would, and prints where each is.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hoodcloud/hoodcloud/internal/chains"
)

func main() {
	for _, c := range chains.All {
		bin, err := c.Install(context.Background())
		if err != nil {
			fmt.Fprintf(os.Stderr, "install-chains: %s: %v\n", c.Name, err)
			os.Exit(1)
		}
		fmt.Printf("%s %s: %s\n", c.Name, c.Version, bin)
	}
}
