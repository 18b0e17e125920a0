package main

import (
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// countDeadLetters registers hoodcloud_payment_dead_letters_total and
// returns what counts a payment event the consumer gives up on.
func (m *Main) countDeadLetters() func(*engine.PaymentDeadLetter) {
	n := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hoodcloud_payment_dead_letters_total",
		Help: "Payment events the consumer gave up on; each has a critical incident until redriven.",
	})
	m.Registry.MustRegister(n)
	return func(*engine.PaymentDeadLetter) { n.Inc() }
}
