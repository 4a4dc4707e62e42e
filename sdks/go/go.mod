module github.com/keyward/keyward-go

go 1.19
