module github.com/actord/actord

go 1.26
