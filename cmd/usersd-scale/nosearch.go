//go:build !search

package main

// searchScenarios is empty until SearchUsers is in the generated client
// (branch search); search.go has them, built with -tags search.
func searchScenarios(int) []scenario { return nil }
