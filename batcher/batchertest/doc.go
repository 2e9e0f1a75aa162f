// Package batchertest provides what tests of code built on the batcher
// need: a clock that moves only when the test says, so that every
// scheduling decision can be checked step by step without sleeping.
//
// It imports nothing from batcher (a Clock is satisfied by its method
// set alone), so that batcher's own tests can use it too.
package batchertest
