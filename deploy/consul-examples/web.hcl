# The web service instance web-1 and its Consulate sidecar, registered as
# any Consul service mesh user does:
#   consul services register web.hcl
# (or put it in the agent's config directory). The sidecar then runs with
# -proxy-id web-1-sidecar-proxy. web.json is the same registration for
# the HTTP API (PUT /v1/agent/service/register).
service {
  name    = "web"
  id      = "web-1"
  address = "10.0.0.10"
  port    = 8080
  tags    = ["v1"]
  meta    = { version = "v1" }

  check {
    name     = "web HTTP"
    http     = "http://10.0.0.10:8080/healthz"
    interval = "10s"
    timeout  = "2s"
  }

  connect {
    sidecar_service {
      # The sidecar's public (inbound) listener.
      port = 21000

      proxy {
        # The app calls api at http://127.0.0.1:9191 and payments at
        # http://127.0.0.1:9192; its sidecar routes both through the mesh.
        upstreams = [
          {
            destination_name = "api"
            local_bind_port  = 9191
          },
          {
            destination_name = "payments"
            local_bind_port  = 9192
          }
        ]
        config = {
          # Consul's proxy Config keys (see the README).
          local_connect_timeout_ms = 1000
        }
      }
    }
  }
}
