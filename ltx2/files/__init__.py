"""Reading the files a user has, each checked as it is read: nothing here makes a model."""
