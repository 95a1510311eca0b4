// Command hello is built by gwbuild's tests.
package main

import "fmt"

func main() { fmt.Println("hello from the module") }
