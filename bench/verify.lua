-- wrk script: each request with a key picked at random from the file given after `--` (one
-- secret per line): POST {"key":…} to the URL's path, or, with a second argument `header`, GET
-- it with the key in X-API-Key (the gateway bench).
local keys = {}
local in_header = false

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then keys[#keys + 1] = line end
  end
  in_header = args[2] == "header"
  math.randomseed(os.time())
end

function request()
  local key = keys[math.random(#keys)]
  if in_header then
    return wrk.format("GET", nil, { ["X-API-Key"] = key })
  end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, '{"key":"' .. key .. '"}')
end
