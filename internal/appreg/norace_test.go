//go:build !race

package appreg

const raceOn = false
