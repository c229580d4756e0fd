-- wrk script: POST a 10-field JSON user (path from WRK_PATH, default /users)
wrk.method = "POST"
wrk.path = os.getenv("WRK_PATH") or "/users"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":"6f1c6b7e-8a8b-4c5d-9e0f-112233445566","name":"Ann Example","email":"ann@example.com",'
  .. '"age":33,"score":9.5,"active":true,"role":"admin","created_at":"2026-11-27T21:00:00Z",'
  .. '"tags":["a","b","c"],"nickname":null}'
