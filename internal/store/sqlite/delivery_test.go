package sqlite

import (
	"testing"

	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
)

func TestDeliveryLog(t *testing.T) {
	deliverytest.Run(t, func(t *testing.T) deliverytest.Store {
		return openStore(t, freshOptions(t)).(*Store)
	}, nil)
}
